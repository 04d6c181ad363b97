package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/internal/human"
	"github.com/jetmesh/jetmesh/internal/jsonx"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/status"
)

var funcs = template.FuncMap{
	"ago":      func(now, t time.Time) string { return humanDuration(now.Sub(t)) },
	"duration": humanDuration,
	"bytes":    human.Bytes,
	"percent":  func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
	"json": func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	},
	"join": strings.Join,
}

func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0f min", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.0f days", math.Floor(d.Hours()/24))
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, u who) {
	ctx, cancel := call(r)
	defer cancel()
	rep, err := status.Collect(ctx, c.js)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, "The bus did not answer: "+err.Error())
		return
	}
	c.render(w, r, http.StatusOK, "overview.html", c.page(u, "overview", "Overview", rep))
}

// liveOverview pushes the overview's panels, rendered, every few seconds as server-sent
// events, until the page goes away.
func (c *Console) liveOverview(w http.ResponseWriter, r *http.Request, u who) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	tick := time.NewTicker(c.live)
	defer tick.Stop()
	for {
		ctx, cancel := call(r)
		rep, err := status.Collect(ctx, c.js)
		cancel()
		var buf bytes.Buffer
		if err == nil {
			err = c.tmpl.ExecuteTemplate(&buf, "panels", c.page(u, "overview", "", rep))
		}
		if err != nil {
			buf.Reset()
			template.HTMLEscape(&buf, []byte("The bus did not answer: "+err.Error()))
			fmt.Fprint(w, "event: problem\n")
		}
		for line := range strings.SplitSeq(buf.String(), "\n") {
			fmt.Fprintf(w, "data: %s\n", line)
		}
		fmt.Fprint(w, "\n")
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// ruleView is one rule on the rules page.
type ruleView struct {
	Rule    rules.Rule
	Pattern string
	Filters []string
	State   *status.Rule
}

type rulesData struct {
	Rules  []ruleView
	Test   *testResult
	Events string // the sandbox's last event
	Chosen string
}

type testResult struct {
	Rule    string
	Matched bool
	Error   string
}

func (c *Console) rulesData(r *http.Request) (*rulesData, error) {
	ctx, cancel := call(r)
	defer cancel()
	store, err := rules.OpenStore(ctx, c.js)
	if err != nil {
		return nil, err
	}
	rs, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := status.Collect(ctx, c.js)
	if err != nil {
		return nil, err
	}
	states := map[string]*status.Rule{}
	for i := range rep.Rules {
		states[rep.Rules[i].Name] = &rep.Rules[i]
	}
	d := &rulesData{}
	for _, rule := range rs {
		rule.SetDefaults()
		v := ruleView{Rule: rule, State: states[rule.Name]}
		pretty, _ := json.MarshalIndent(rule.Pattern, "", "  ")
		v.Pattern = string(pretty)
		if p, err := rule.Compile(); err == nil {
			v.Filters = p.FilterSubjects()
		}
		d.Rules = append(d.Rules, v)
	}
	slices.SortFunc(d.Rules, func(a, b ruleView) int { return strings.Compare(a.Rule.Name, b.Rule.Name) })
	return d, nil
}

func (c *Console) rulesPage(w http.ResponseWriter, r *http.Request, u who) {
	d, err := c.rulesData(r)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, "The rules could not be read: "+err.Error())
		return
	}
	p := c.page(u, "rules", "Rules", d)
	p.Flash = r.URL.Query().Get("done")
	c.render(w, r, http.StatusOK, "rules.html", p)
}

// testPattern is the sandbox: does this event match that rule's pattern? The same check
// as `jetmesh rules test-pattern`.
func (c *Console) testPattern(w http.ResponseWriter, r *http.Request, u who) {
	d, err := c.rulesData(r)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, "The rules could not be read: "+err.Error())
		return
	}
	d.Chosen, d.Events = r.PostFormValue("rule"), r.PostFormValue("event")
	res := &testResult{Rule: d.Chosen}
	var chosen *ruleView
	for i := range d.Rules {
		if d.Rules[i].Rule.Name == d.Chosen {
			chosen = &d.Rules[i]
		}
	}
	switch ev, err := jsonx.Decode([]byte(d.Events)); {
	case chosen == nil:
		res.Error = "Choose a rule."
	case err != nil:
		res.Error = "The event is not JSON: " + err.Error()
	default:
		obj, ok := ev.(map[string]any)
		p, perr := chosen.Rule.Compile()
		switch {
		case !ok:
			res.Error = "The event must be a JSON object."
		case perr != nil:
			res.Error = perr.Error()
		default:
			res.Matched = p.Match(rules.ExpandDottedKeys(obj).(map[string]any))
		}
	}
	d.Test = res
	c.render(w, r, http.StatusOK, "rules.html", c.page(u, "rules", "Rules", d))
}

func (c *Console) pauseRule(w http.ResponseWriter, r *http.Request, u who) {
	c.ruleAction(w, r, u, func(s *rules.Store, name string) (string, error) {
		ctx, cancel := call(r)
		defer cancel()
		if _, err := s.Pause(ctx, name, time.Time{}); err != nil {
			return "", err
		}
		return "Paused " + name + " until resumed: no event is handed out, the backlog is kept.", nil
	})
}

func (c *Console) resumeRule(w http.ResponseWriter, r *http.Request, u who) {
	c.ruleAction(w, r, u, func(s *rules.Store, name string) (string, error) {
		ctx, cancel := call(r)
		defer cancel()
		if err := s.Resume(ctx, name); err != nil {
			return "", err
		}
		return "Resumed " + name + ": its backlog is being delivered.", nil
	})
}

func (c *Console) ruleAction(w http.ResponseWriter, r *http.Request, u who, act func(*rules.Store, string) (string, error)) {
	ctx, cancel := call(r)
	defer cancel()
	store, err := rules.OpenStore(ctx, c.js)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, err.Error())
		return
	}
	name := r.PathValue("name")
	msg, err := act(store, name)
	if err != nil {
		c.fail(w, r, u, http.StatusBadRequest, err.Error())
		return
	}
	c.log.Info("console action", "principal", u.name(), "action", r.URL.Path)
	http.Redirect(w, r, Prefix+"rules?done="+url.QueryEscape(msg), http.StatusSeeOther)
}
