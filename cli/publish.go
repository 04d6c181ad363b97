package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

type publishOptions struct {
	id, typ, source, subject, data, contentType, dataSchema, eventTime string
	extensions                                                         []string
	timeout                                                            time.Duration
	// deliverAt and delay set the deliverat extension: deliver no earlier than then.
	deliverAt string
	delay     time.Duration
}

func newPublishCmd(g *globals) *cobra.Command {
	o := &publishOptions{}
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish one event through the ingress and print its id",
		Long: `Publish one CloudEvent through the server's ingress (over NATS). The event is
validated like any other; on success the accepted id is printed once the event
is persisted. On rejection the server's reason is printed and the exit code is 2.

--data takes JSON text, @FILE to read a file, or - to read standard input.
Without --id a fresh UUIDv7 is used; re-publishing the same --id within the
duplicate window is accepted and stored once.

Attributes are sent exactly as given and judged by the ingress with the rules any
HTTP publisher meets (docs/ingress.md): --ext names are taken as typed (lowercase
a-z0-9 only), an --ext that names a core attribute (id, type, data...) is refused as
a duplicate, and nothing is trimmed, lower-cased or re-encoded on the way.`,
		Example: `  jetmesh publish --type orders.created --source /shop --data '{"id":"o-1","amount":120}'
  jetmesh publish --type orders.created --source /shop --id o-1 --subject o-1 --data @order.json
  echo '{"amount":5}' | jetmesh publish --type orders.created --source /shop --data -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPublish(cmd.Context(), g, o, cmd.InOrStdin())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.typ, "type", "", "event type, dot-separated lowercase tokens (required)")
	f.StringVar(&o.source, "source", "", "event source, a URI reference such as /shop or urn:svc:billing (required)")
	f.StringVar(&o.data, "data", "", "event data: JSON text, @FILE, or - for stdin")
	f.StringVar(&o.id, "id", "", "event id (default: a new UUIDv7)")
	f.StringVar(&o.subject, "subject", "", "CloudEvents subject: what the event is about")
	f.StringVar(&o.contentType, "content-type", event.DefaultContentType, "datacontenttype of --data")
	f.StringVar(&o.dataSchema, "dataschema", "", "dataschema URI")
	f.StringVar(&o.eventTime, "time", "", "event time, RFC 3339 (default: when the server accepts it)")
	f.StringArrayVar(&o.extensions, "ext", nil, "extension attribute NAME=VALUE (repeatable)")
	f.StringVar(&o.deliverAt, "deliver-at", "", "store now, deliver no earlier than this RFC 3339 time (the deliverat extension)")
	f.DurationVar(&o.delay, "delay", 0, "store now, deliver no earlier than this long from now (e.g. 30s, 2h)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the server's answer")
	return cmd
}

func runPublish(ctx context.Context, g *globals, o *publishOptions, stdin io.Reader) error {
	if o.typ == "" || o.source == "" {
		return refused("--type and --source are required (see 'jetmesh publish --help')")
	}
	data, err := readData(o.data, stdin)
	if err != nil {
		return err
	}
	if o.id == "" {
		o.id = event.NewID()
	}
	switch {
	case o.deliverAt != "" && o.delay != 0:
		return refused("give --deliver-at or --delay, not both")
	case o.delay < 0:
		return refused("--delay must not be negative")
	case o.delay > 0:
		o.extensions = append(o.extensions, event.DeliverAtExtension+"="+time.Now().Add(o.delay).UTC().Format(time.RFC3339Nano))
	case o.deliverAt != "":
		o.extensions = append(o.extensions, event.DeliverAtExtension+"="+o.deliverAt) // the ingress judges it
	}
	// The attributes travel exactly as given, in a structured event, and the ingress is the
	// one judge of them: a bad event is refused (and dead-lettered) by the rules and the
	// code that judge any HTTP publisher. An --ext that names a core attribute is a
	// duplicate key, an upper-case name a bad extension name; nothing is fixed up here.
	var draft event.Draft
	draft.Set("specversion", event.SpecVersion)
	draft.Set("id", o.id)
	draft.Set("type", o.typ)
	draft.Set("source", o.source)
	draft.Set("subject", o.subject)
	draft.Set("dataschema", o.dataSchema)
	draft.Set("time", o.eventTime)
	draft.Set("datacontenttype", o.contentType)
	for _, ext := range o.extensions {
		name, value, ok := strings.Cut(ext, "=")
		if !ok || name == "" {
			return refused("--ext wants NAME=VALUE, got %q", ext)
		}
		draft.Set(name, value)
	}
	draft.SetData(data)
	msg := nats.NewMsg(bus.IngressSubject) // the client sets the subject
	msg.Header.Set(event.HeaderContentType, ingress.MediaStructured)
	msg.Data, _ = draft.MarshalJSON() // never fails

	nc, err := g.connect("publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	client, err := g.ingressClient(nc)
	if err != nil {
		return err
	}
	resp, err := client.Send(ctx, msg)
	if err != nil {
		return err
	}
	if g.output == "json" {
		if err := writeJSON(g.stdout, resp); err != nil {
			return err
		}
	}
	if resp.Error != nil {
		return refused("rejected (%s): %s", resp.Error.Code, resp.Error.Message)
	}
	if len(resp.Entries) != 1 {
		return fmt.Errorf("%w: %d entries for one event", ingress.ErrBadResponse, len(resp.Entries))
	}
	r := resp.Entries[0]
	switch {
	case r.ErrorCode == ingress.CodeUnavailable:
		return fmt.Errorf("not stored (%s): %s", r.ErrorCode, r.ErrorMessage)
	case !r.Accepted():
		return refused("rejected (%s): %s", r.ErrorCode, r.ErrorMessage)
	}
	if g.output != "json" {
		fmt.Fprintln(g.stdout, r.ID)
	}
	if r.Duplicate {
		fmt.Fprintf(g.stderr, "note: %s was already stored (duplicate within the window); stored once\n", r.ID)
	}
	return nil
}

func readData(arg string, stdin io.Reader) ([]byte, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading --data from stdin: %w", err)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, refused("--data %s: %v", arg, err)
		}
		return b, nil
	}
	return []byte(arg), nil
}
