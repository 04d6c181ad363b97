package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// consoleSession is a browser-like HTTP client of the console: it keeps the session
// cookie and does not follow redirects, so each answer can be checked.
type consoleSession struct {
	t      *testing.T
	base   string
	client *http.Client
	cookie *http.Cookie
}

func newConsoleSession(t *testing.T, srv *serverProc) *consoleSession {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &consoleSession{t: t, base: srv.httpURL(), client: c}
}

func (s *consoleSession) do(method, path string, form url.Values, origin string) (int, http.Header, string) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, s.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if s.cookie != nil {
		req.AddCookie(s.cookie)
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, ck := range res.Cookies() {
		if ck.Name == "jetmesh_console" {
			s.cookie = ck
		}
	}
	return res.StatusCode, res.Header, string(raw)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (s *consoleSession) csrf(page string) string {
	s.t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		s.t.Fatalf("no CSRF token in the page:\n%.2000s", page)
	}
	return m[1]
}

// TestConsoleAccessControl: with access control on, the console asks for a token; a
// viewer sees but cannot act; an admin acts, but only with the page's CSRF token and from
// the console's own origin; other roles and bad tokens cannot sign in.
func TestConsoleAccessControl(t *testing.T) {
	srv, admin := authedServer(t)
	t.Setenv("JETMESH_CREDS", admin)
	applyRules(t, srv, "name: ledger\npattern: {type: [payments.captured]}\ntarget: {service: ledger}\n")
	_, viewerToken := mint(t, srv, admin, "--role", "viewer", "--name", "console-viewer")
	_, adminToken := mint(t, srv, admin, "--role", "admin", "--name", "ops")
	_, publisherToken := mint(t, srv, admin, "--role", "publisher", "--name", "shop")

	anon := newConsoleSession(t, srv)
	if code, h, _ := anon.do("GET", "/console/", nil, ""); code != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Fatalf("anonymous overview: %d to %q, want a redirect to the sign-in page", code, h.Get("Location"))
	}
	for name, token := range map[string]string{"a wrong token": "nope", "a publisher's token": publisherToken} {
		s := newConsoleSession(t, srv)
		code, h, _ := s.do("POST", "/console/login", url.Values{"token": {token}}, "")
		if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "error=") || s.cookie != nil {
			t.Errorf("sign-in with %s: %d %q", name, code, h.Get("Location"))
		}
	}

	viewer := newConsoleSession(t, srv)
	if code, _, _ := viewer.do("POST", "/console/login", url.Values{"token": {viewerToken}}, ""); code != http.StatusSeeOther || viewer.cookie == nil {
		t.Fatalf("viewer sign-in: %d", code)
	}
	if !viewer.cookie.HttpOnly || viewer.cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("the session cookie is not HttpOnly and SameSite=Strict: %+v", viewer.cookie)
	}
	code, h, page := viewer.do("GET", "/console/rules", nil, "")
	if code != 200 || !strings.Contains(page, "read-only") || strings.Contains(page, `class="pause"`) || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("the viewer's rules page: %d, pause button shown: %v", code, strings.Contains(page, `class="pause"`))
	}
	if code, _, _ := viewer.do("POST", "/console/rules/ledger/pause", url.Values{"csrf": {viewer.csrf(page)}}, ""); code != http.StatusForbidden {
		t.Errorf("a viewer paused a rule: %d", code)
	}

	ops := newConsoleSession(t, srv)
	ops.do("POST", "/console/login", url.Values{"token": {adminToken}}, "")
	_, _, page = ops.do("GET", "/console/rules", nil, "")
	token := ops.csrf(page)
	if code, _, _ := ops.do("POST", "/console/rules/ledger/pause", url.Values{}, ""); code != http.StatusForbidden {
		t.Errorf("a pause without the CSRF token: %d, want 403", code)
	}
	if code, _, _ := ops.do("POST", "/console/rules/ledger/pause", url.Values{"csrf": {viewer.csrf(viewerPage(t, viewer))}}, ""); code != http.StatusForbidden {
		t.Errorf("a pause with another session's CSRF token: %d, want 403", code)
	}
	if code, _, _ := ops.do("POST", "/console/rules/ledger/pause", url.Values{"csrf": {token}}, "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("a pause from another origin: %d, want 403", code)
	}
	if paused(t, srv, admin) {
		t.Fatal("a refused request paused the rule")
	}
	if code, h, _ := ops.do("POST", "/console/rules/ledger/pause", url.Values{"csrf": {token}}, srv.httpURL()); code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "Paused") {
		t.Fatalf("the admin's pause: %d %q", code, h.Get("Location"))
	}
	if !paused(t, srv, admin) {
		t.Error("the admin's pause did not pause the rule")
	}
	if code, h, _ := ops.do("POST", "/console/logout", url.Values{}, ""); code != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Errorf("sign-out: %d", code)
	}
}

func viewerPage(t *testing.T, s *consoleSession) string {
	t.Helper()
	_, _, page := s.do("GET", "/console/rules", nil, "")
	return page
}

func paused(t *testing.T, srv *serverProc, admin string) bool {
	t.Helper()
	out, _, code := srv.cli(t, "", "--creds", admin, "rules", "ls", "-o", "json")
	var rows []struct {
		PausedUntil *string `json:"pausedUntil"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
		t.Fatalf("rules ls: %d %s", code, out)
	}
	return rows[0].PausedUntil != nil
}
