// Package console is jetmesh's web console, served by the server under /console/: the bus
// at a glance, live, and the operator actions of the CLI (pause and resume a rule, test a
// pattern), calling the same library functions. Pages are rendered on the server from
// embedded templates; a little JavaScript keeps the overview live over server-sent events.
//
// With access control on, the console asks for a bearer token (jetmesh creds add): a
// viewer sees, an admin acts. The token is kept in an HttpOnly, SameSite=Strict cookie,
// and every action carries a CSRF token bound to it.
package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

//go:embed templates/*.html static/*
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

const cookieName = "jetmesh_console"

// Console serves the pages.
type Console struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	principals *auth.Directory
	log        *slog.Logger
	tmpl       *template.Template
	csrfKey    []byte
	// live is how often the overview is pushed to open pages.
	live time.Duration
}

// New returns the console over nc (the server's own connection). principals, when set,
// turns access control on.
func New(nc *nats.Conn, principals *auth.Directory, log *slog.Logger) (*Console, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("").Funcs(funcs).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Console{nc: nc, js: js, principals: principals, log: log, tmpl: tmpl, csrfKey: key, live: 2 * time.Second}, nil
}

// Handler serves everything under Prefix.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	mux.HandleFunc("POST "+Prefix+"login", c.login)
	mux.HandleFunc("POST "+Prefix+"logout", c.logout)
	mux.Handle("GET "+Prefix+"{$}", c.viewer(c.overview))
	mux.Handle("GET "+Prefix+"live", c.viewer(c.liveOverview))
	mux.Handle("GET "+Prefix+"rules", c.viewer(c.rulesPage))
	mux.Handle("POST "+Prefix+"rules/test", c.viewer(c.testPattern))
	mux.Handle("POST "+Prefix+"rules/{name}/pause", c.admin(c.pauseRule))
	mux.Handle("POST "+Prefix+"rules/{name}/resume", c.admin(c.resumeRule))
	mux.Handle("GET "+Prefix+"dlq", c.viewer(c.dlqPage))
	mux.Handle("GET "+Prefix+"dlq/{seq}", c.viewer(c.dlqRecord))
	mux.Handle("POST "+Prefix+"dlq/redrive", c.admin(c.redrive))
	mux.Handle("GET "+Prefix+"events", c.viewer(c.explorer))
	mux.Handle("GET "+Prefix+"tail", c.viewer(c.tail))
	mux.Handle("GET "+Prefix+"replays", c.viewer(c.replaysPage))
	mux.Handle("POST "+Prefix+"replays", c.admin(c.startReplay))
	mux.Handle("POST "+Prefix+"replays/{id}/cancel", c.admin(c.cancelReplay))
	mux.Handle("GET "+Prefix+"publish", c.viewer(c.publishPage))
	mux.Handle("POST "+Prefix+"publish", c.admin(c.publish))
	mux.Handle("GET "+Prefix+"types", c.viewer(c.typesPage))
	mux.Handle("GET "+Prefix+"services", c.viewer(c.servicesPage))
	return securityHeaders(mux)
}

// securityHeaders keeps the pages from being framed or loading anything from elsewhere.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make form posts say Origin: null
		next.ServeHTTP(w, r)
	})
}

// who is the principal behind a request: nil with access control off.
type who struct {
	principal *auth.Principal
	token     string
}

func (w who) name() string {
	if w.principal == nil {
		return "admin (no access control)"
	}
	return w.principal.Name
}

func (w who) mayAct() bool { return w.principal == nil || w.principal.Role == auth.RoleAdmin }

type handler func(w http.ResponseWriter, r *http.Request, u who)

// viewer lets in any principal that may see: a viewer or an admin.
func (c *Console) viewer(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := c.identify(r)
		if !ok {
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !c.validCSRF(r, u) {
			c.fail(w, r, u, http.StatusForbidden, "This form has expired or came from another site. Reload the page and try again.")
			return
		}
		h(w, r, u)
	})
}

// admin lets in only principals that may act, with a valid CSRF token.
func (c *Console) admin(h handler) http.Handler {
	return c.viewer(func(w http.ResponseWriter, r *http.Request, u who) {
		if !u.mayAct() {
			c.fail(w, r, u, http.StatusForbidden, "Your credentials ("+string(u.principal.Role)+") may look but not act: this takes an admin.")
			return
		}
		h(w, r, u)
	})
}

func (c *Console) identify(r *http.Request) (who, bool) {
	if c.principals == nil {
		return who{}, true
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return who{}, false
	}
	p, ok := c.principals.ByToken(ck.Value)
	if !ok || (p.Role != auth.RoleAdmin && p.Role != auth.RoleViewer) {
		return who{}, false
	}
	return who{principal: p, token: ck.Value}, true
}

// csrf is the token forms carry: bound to the session's bearer token, so it is worthless
// with another session and unknowable to another site.
func (c *Console) csrf(u who) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte(u.token))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) validCSRF(r *http.Request, u who) bool {
	if origin := r.Header.Get("Origin"); origin != "" && !sameHost(origin, r.Host) {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.csrf(u)))
}

func sameHost(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && rest == host
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.principals == nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login.html", page{Title: "Sign in", Data: r.URL.Query().Get("error")})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.principals == nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	p, ok := c.principals.ByToken(token)
	if !ok || token == "" {
		http.Redirect(w, r, Prefix+"login?error=That+token+is+not+an+active+principal%27s.", http.StatusSeeOther)
		return
	}
	if p.Role != auth.RoleAdmin && p.Role != auth.RoleViewer {
		http.Redirect(w, r, Prefix+"login?error=The+console+takes+a+viewer+or+admin+token.", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: Prefix, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
	c.log.Info("console sign-in", "principal", p.Name, "role", p.Role)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	User   string
	CanAct bool
	Auth   bool
	CSRF   string
	Flash  string
	Error  string
	Data   any
	// Refresh reloads the page every so many seconds (0: never), for progress shown
	// without a live stream.
	Refresh int
}

func (c *Console) page(u who, nav, title string, data any) page {
	return page{Title: title, Nav: nav, User: u.name(), CanAct: u.mayAct(), Auth: c.principals != nil, CSRF: c.csrf(u), Data: data}
}

func (c *Console) render(w http.ResponseWriter, _ *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		c.log.Error("console page failed", "page", name, "error", err)
		http.Error(w, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, u who, status int, msg string) {
	p := c.page(u, "", "Not done", nil)
	p.Error = msg
	c.render(w, r, status, "error.html", p)
}

// call bounds one library call made for a page.
func call(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 15*time.Second)
}
