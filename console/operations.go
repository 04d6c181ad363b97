package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/jsonx"
	"github.com/jetmesh/jetmesh/lookup"
	"github.com/jetmesh/jetmesh/replay"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/jetmesh/jetmesh/status"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ingressClient publishes as the signed-in principal, the way its own CLI would.
func (c *Console) ingressClient(u who) *ingress.Client {
	if u.principal == nil {
		return ingress.NewClient(c.nc)
	}
	return ingress.NewClient(c.nc, ingress.AsPrincipal(u.principal.Name))
}

func (c *Console) ruleNames(r *http.Request) ([]rules.Rule, error) {
	ctx, cancel := call(r)
	defer cancel()
	store, err := rules.OpenStore(ctx, c.js)
	if err != nil {
		return nil, err
	}
	return store.List(ctx)
}

// redirectDone goes back to a page with a message for the flash.
func redirectDone(w http.ResponseWriter, r *http.Request, path, msg string) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	http.Redirect(w, r, Prefix+path+sep+"done="+url.QueryEscape(msg), http.StatusSeeOther)
}

// --- DLQ

type dlqRow struct {
	dlq.Stored
	At                 time.Time // when the DLQ stored it
	EventID, EventType string
	Mark               *dlq.Mark
}

type dlqData struct {
	Records []dlqRow
	Reason  string
	Rule    string
	Reasons []string
	Depth   status.DLQ
}

func (c *Console) dlqPage(w http.ResponseWriter, r *http.Request, u who) {
	f := dlq.Filter{Rule: r.URL.Query().Get("rule")}
	if reason := r.URL.Query().Get("reason"); reason != "" {
		f.Reasons = []string{reason}
	}
	d := &dlqData{Reason: r.URL.Query().Get("reason"), Rule: f.Rule, Reasons: dlq.Reasons}
	if err := f.Validate(); err != nil {
		c.fail(w, r, u, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := call(r)
	defer cancel()
	records, err := dlq.Last(ctx, c.js, f, 200, nil)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, "The DLQ could not be read: "+err.Error())
		return
	}
	seqs := make([]uint64, len(records))
	for i, rec := range records {
		seqs[i] = rec.Seq
	}
	marks, err := dlq.Marks(ctx, c.js, seqs)
	if err != nil {
		c.log.Warn("DLQ page without redrive marks", "error", err) // the records matter more
	}
	slices.Reverse(records) // newest first
	for _, rec := range records {
		row := dlqRow{Stored: rec, At: rec.Stored}
		row.EventID, row.EventType = rec.Record.EventRef()
		if m, ok := marks[rec.Seq]; ok {
			row.Mark = &m
		}
		d.Records = append(d.Records, row)
	}
	if rep, err := status.Collect(ctx, c.js); err == nil {
		d.Depth = rep.DLQ
	}
	p := c.page(u, "dlq", "Dead-letter queue", d)
	p.Flash = r.URL.Query().Get("done")
	c.render(w, r, http.StatusOK, "dlq.html", p)
}

type recordData struct {
	dlq.Stored
	At                 time.Time
	EventID, EventType string
	Mark               *dlq.Mark
	Headers            [][2]string
	Body               string
}

func (c *Console) dlqRecord(w http.ResponseWriter, r *http.Request, u who) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		c.fail(w, r, u, http.StatusBadRequest, "Not a DLQ sequence number.")
		return
	}
	ctx, cancel := call(r)
	defer cancel()
	rec, err := dlq.Get(ctx, c.js, seq)
	if err != nil {
		c.fail(w, r, u, http.StatusNotFound, err.Error())
		return
	}
	d := recordData{Stored: *rec, At: rec.Stored, Body: renderBody(rec.Record.Body)}
	d.EventID, d.EventType = rec.Record.EventRef()
	if marks, err := dlq.Marks(ctx, c.js, []uint64{seq}); err == nil {
		if m, ok := marks[seq]; ok {
			d.Mark = &m
		}
	}
	for _, k := range slices.Sorted(maps.Keys(rec.Record.Header)) {
		d.Headers = append(d.Headers, [2]string{k, strings.Join(rec.Record.Header[k], ", ")})
	}
	c.render(w, r, http.StatusOK, "record.html", c.page(u, "dlq", fmt.Sprintf("DLQ record #%d", seq), d))
}

func renderBody(b []byte) string {
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") == nil {
		return pretty.String()
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("(%d bytes of binary data)", len(b))
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request, u who) {
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, u, http.StatusBadRequest, err.Error())
		return
	}
	var seqs []uint64
	for _, s := range r.PostForm["seq"] {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	if len(seqs) == 0 {
		redirectDone(w, r, "dlq", "Select the records to redrive first.")
		return
	}
	ctx, cancel := call(r)
	defer cancel()
	results, err := dlq.Redrive(ctx, c.js, dlq.RedriveOptions{Filter: dlq.Filter{Seqs: seqs}, By: u.name(),
		Resubmit: c.ingressClient(u).Resubmit})
	counts := map[string]int{}
	for _, res := range results {
		counts[res.Result]++
	}
	msg := fmt.Sprintf("Redrove %d record(s): %d to their rule, %d accepted by the ingress, %d rejected again, %d already redriven, %d skipped.",
		len(results), counts[dlq.ResultRedriven], counts[dlq.ResultAccepted], counts[dlq.ResultRejectedAgain], counts[dlq.ResultAlready], counts[dlq.ResultSkipped])
	if err != nil {
		msg += " Stopped: " + err.Error()
	}
	c.log.Info("console action", "principal", u.name(), "action", "dlq redrive", "records", len(seqs))
	redirectDone(w, r, "dlq", msg)
}

// --- Event explorer

type explorerData struct {
	ID, Type, Since string
	Found           []foundEvent
	Stats           *lookup.Stats
	Tail            string
}

type foundEvent struct {
	lookup.Stored
	Headers [][2]string
	Body    string
	Rules   []lookup.RuleState
}

func (c *Console) explorer(w http.ResponseWriter, r *http.Request, u who) {
	q := r.URL.Query()
	d := &explorerData{ID: strings.TrimSpace(q.Get("id")), Type: q.Get("type"), Since: q.Get("since"), Tail: q.Get("tail")}
	p := c.page(u, "events", "Event explorer", d)
	if d.Tail != "" {
		if err := event.ValidateTypePattern(d.Tail); err != nil {
			p.Error = err.Error()
			d.Tail = ""
		}
	}
	if d.ID != "" {
		query := lookup.Query{ID: d.ID, Type: d.Type}
		if d.Since != "" {
			t, err := duration.ParseTime(d.Since, time.Now())
			if err != nil {
				p.Error = err.Error()
				c.render(w, r, http.StatusBadRequest, "events.html", p)
				return
			}
			query.Since = t
		}
		ctx, cancel := call(r)
		defer cancel()
		found, stats, err := lookup.Locate(ctx, c.js, query)
		d.Stats = &stats
		if err != nil {
			p.Error = err.Error()
		}
		for _, f := range found {
			fe := foundEvent{Stored: f.Stored, Rules: f.Rules, Body: renderBody(f.Data)}
			for _, k := range slices.Sorted(maps.Keys(f.Header)) {
				if !strings.HasPrefix(strings.ToLower(k), "nats-") {
					fe.Headers = append(fe.Headers, [2]string{k, strings.Join(f.Header[k], ", ")})
				}
			}
			d.Found = append(d.Found, fe)
		}
	}
	c.render(w, r, http.StatusOK, "events.html", p)
}

// tail streams the events stored from now on whose type matches the pattern, each as a
// rendered table row (server-sent events), until the page goes away.
func (c *Console) tail(w http.ResponseWriter, r *http.Request, _ who) {
	pattern := r.URL.Query().Get("pattern")
	if err := event.ValidateTypePattern(pattern); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	cons, err := c.js.OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.SubjectPrefix + pattern}, DeliverPolicy: jetstream.DeliverNewPolicy, MaxResetAttempts: 6})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	iter, err := cons.Messages()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer iter.Stop()
	go func() { <-ctx.Done(); iter.Stop() }()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "event: ready\ndata: subscribed\n\n") // the page says so: events from now on appear
	flusher.Flush()
	for {
		m, err := iter.Next()
		if err != nil {
			return
		}
		h := m.Headers()
		md, _ := m.Metadata()
		stored := time.Now()
		if md != nil {
			stored = md.Timestamp
		}
		data := renderBody(m.Data())
		if len(data) > 300 {
			data = data[:300] + "…"
		}
		var row bytes.Buffer
		err = c.tmpl.ExecuteTemplate(&row, "tailrow", map[string]string{
			"Time": stored.Format("15:04:05.000"), "ID": event.HeaderGet(h, "ce-id"), "Type": event.HeaderGet(h, "ce-type"),
			"Source": event.HeaderGet(h, "ce-source"), "Data": strings.Join(strings.Fields(data), " ")})
		if err != nil {
			return
		}
		fmt.Fprintf(w, "data: %s\n\n", strings.ReplaceAll(row.String(), "\n", " "))
		flusher.Flush()
	}
}

// --- Replays

type replaysData struct {
	Replays []*replay.Replay
	Rules   []string
}

func (c *Console) replaysPage(w http.ResponseWriter, r *http.Request, u who) {
	ctx, cancel := call(r)
	defer cancel()
	all, err := replay.List(ctx, c.js)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, err.Error())
		return
	}
	rs, err := c.ruleNames(r)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, err.Error())
		return
	}
	d := &replaysData{Replays: all}
	for _, rule := range rs {
		d.Rules = append(d.Rules, rule.Name)
	}
	p := c.page(u, "replays", "Replays", d)
	p.Flash = r.URL.Query().Get("done")
	for _, rp := range all {
		if !rp.Finished() {
			p.Refresh = 3 // follow the progress while a replay runs
		}
	}
	c.render(w, r, http.StatusOK, "replays.html", p)
}

func (c *Console) startReplay(w http.ResponseWriter, r *http.Request, u who) {
	now := time.Now()
	q := replay.Request{Rule: r.PostFormValue("rule"), By: u.name()}
	var err error
	if q.From, err = duration.ParseTime(r.PostFormValue("from"), now); err != nil {
		redirectDone(w, r, "replays", "Not started: from: "+err.Error())
		return
	}
	if to := strings.TrimSpace(r.PostFormValue("to")); to != "" {
		if q.To, err = duration.ParseTime(to, now); err != nil {
			redirectDone(w, r, "replays", "Not started: to: "+err.Error())
			return
		}
	}
	if rate := strings.TrimSpace(r.PostFormValue("rate")); rate != "" {
		if q.Rate, err = strconv.ParseFloat(rate, 64); err != nil {
			redirectDone(w, r, "replays", "Not started: the rate is not a number.")
			return
		}
	}
	ctx, cancel := call(r)
	defer cancel()
	rp, err := replay.Start(ctx, c.js, q)
	if err != nil {
		redirectDone(w, r, "replays", "Not started: "+err.Error())
		return
	}
	c.log.Info("console action", "principal", u.name(), "action", "replay start", "replay", rp.ID)
	redirectDone(w, r, "replays", "Started replay "+rp.ID+" of rule "+rp.Rule+".")
}

func (c *Console) cancelReplay(w http.ResponseWriter, r *http.Request, u who) {
	ctx, cancel := call(r)
	defer cancel()
	rp, err := replay.Cancel(ctx, c.js, r.PathValue("id"))
	if err != nil {
		redirectDone(w, r, "replays", "Not cancelled: "+err.Error())
		return
	}
	redirectDone(w, r, "replays", fmt.Sprintf("Cancelled replay %s after %d of %d event(s).", rp.ID, rp.Scanned, rp.Total))
}

// --- Publish a test event

type publishData struct {
	Type, Source, ID, Data string
	Result                 *ingress.EntryResult
	RequestError           *ingress.RequestError
	Matches                []string
}

func (c *Console) publishPage(w http.ResponseWriter, r *http.Request, u who) {
	c.render(w, r, http.StatusOK, "publish.html", c.page(u, "publish", "Publish a test event",
		&publishData{Source: "/console", Data: "{}"}))
}

func (c *Console) publish(w http.ResponseWriter, r *http.Request, u who) {
	d := &publishData{Type: strings.TrimSpace(r.PostFormValue("type")), Source: strings.TrimSpace(r.PostFormValue("source")),
		ID: strings.TrimSpace(r.PostFormValue("id")), Data: r.PostFormValue("data")}
	p := c.page(u, "publish", "Publish a test event", d)
	draft := map[string]any{"specversion": "1.0", "type": d.Type, "source": d.Source, "id": d.ID, "datacontenttype": "application/json"}
	if d.ID == "" {
		draft["id"] = event.NewID()
		d.ID = draft["id"].(string)
	}
	var data any
	if err := json.Unmarshal([]byte(d.Data), &data); err != nil {
		p.Error = "The data is not JSON: " + err.Error()
		c.render(w, r, http.StatusBadRequest, "publish.html", p)
		return
	}
	draft["data"] = data
	body, _ := json.Marshal(draft)
	msg := ingressMsg(body)
	ctx, cancel := call(r)
	defer cancel()
	resp, err := c.ingressClient(u).Send(ctx, msg)
	if err != nil {
		p.Error = err.Error()
		c.render(w, r, http.StatusBadGateway, "publish.html", p)
		return
	}
	d.RequestError = resp.Error
	if len(resp.Entries) == 1 {
		d.Result = &resp.Entries[0]
	}
	if rs, err := c.ruleNames(r); err == nil {
		structured, _ := jsonx.Decode(body)
		for _, rule := range rs {
			if pat, err := rule.Compile(); err == nil && pat.Match(rules.ExpandDottedKeys(structured).(map[string]any)) {
				d.Matches = append(d.Matches, rule.Name)
			}
		}
	}
	c.log.Info("console action", "principal", u.name(), "action", "publish", "type", d.Type, "id", d.ID)
	c.render(w, r, http.StatusOK, "publish.html", p)
}

// --- Event types

type typesData struct {
	Types          []typeRow
	Chosen         string
	Versions       []schemas.Document
	Shown, Against *schemas.Document
	Problems       schemas.Problems
	// Diff goes from the older of the two versions to the newer.
	Diff         []diffLine
	Older, Newer int
}

type typeRow struct {
	Name     string
	Versions []int
}

func (c *Console) typesPage(w http.ResponseWriter, r *http.Request, u who) {
	ctx, cancel := call(r)
	defer cancel()
	reg, err := schemas.OpenRegistry(ctx, c.js)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, err.Error())
		return
	}
	cat, err := reg.Catalog(ctx)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, err.Error())
		return
	}
	d := &typesData{Chosen: r.URL.Query().Get("type")}
	for _, t := range cat.Types() {
		row := typeRow{Name: t}
		for _, doc := range cat.Versions(t) {
			row.Versions = append(row.Versions, doc.Version)
		}
		d.Types = append(d.Types, row)
	}
	p := c.page(u, "types", "Event types", d)
	if d.Chosen != "" {
		d.Versions = cat.Versions(d.Chosen)
		if len(d.Versions) == 0 {
			p.Error = "No schema is registered for " + d.Chosen + "."
		} else {
			shown := d.Versions[len(d.Versions)-1]
			if v, err := strconv.Atoi(r.URL.Query().Get("v")); err == nil {
				if doc, ok := cat.Get(d.Chosen, v); ok {
					shown = doc
				}
			}
			d.Shown = &shown
			if v, err := strconv.Atoi(r.URL.Query().Get("against")); err == nil {
				if doc, ok := cat.Get(d.Chosen, v); ok {
					d.Against = &doc
					prev, next := doc, shown
					if prev.Version > next.Version {
						prev, next = next, prev
					}
					d.Problems = schemas.CheckCompatible(prev, next, cat)
					d.Diff, d.Older, d.Newer = lineDiff(renderBody(prev.Raw), renderBody(next.Raw)), prev.Version, next.Version
				}
			}
		}
	}
	c.render(w, r, http.StatusOK, "types.html", p)
}

func (d typesData) Pretty(doc *schemas.Document) string { return renderBody(doc.Raw) }

// --- Services

type servicesData struct {
	Report *status.Report
}

func (c *Console) servicesPage(w http.ResponseWriter, r *http.Request, u who) {
	ctx, cancel := call(r)
	defer cancel()
	rep, err := status.Collect(ctx, c.js)
	if err != nil {
		c.fail(w, r, u, http.StatusBadGateway, err.Error())
		return
	}
	c.render(w, r, http.StatusOK, "services.html", c.page(u, "services", "Services", &servicesData{Report: rep}))
}

func ingressMsg(structured []byte) *nats.Msg {
	msg := nats.NewMsg(bus.IngressSubject) // the client sets the subject
	msg.Header.Set(event.HeaderContentType, ingress.MediaStructured)
	msg.Data = structured
	return msg
}
