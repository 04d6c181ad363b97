package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/nats-io/nats.go"
)

// Client publishes events to a jetmesh ingress over NATS. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	subject string
}

// ClientOption tunes a Client.
type ClientOption func(*Client)

// AsPrincipal sends requests as the named principal, on its own ingress subject
// (jetmesh.v1.events.<name>): what access control requires of clients with credentials.
func AsPrincipal(name string) ClientOption {
	return func(c *Client) {
		if name != "" {
			c.subject = auth.IngressSubject(name)
		}
	}
}

// NewClient returns a client that sends requests over nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) *Client {
	c := &Client{nc: nc, subject: bus.IngressSubject}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Subject is where the client's requests go.
func (c *Client) Subject() string { return c.subject }

// Publish sends events as one request (a batch when there are several) and returns the
// ingress's per-entry answer. An error means no answer was had; rejected entries are
// reported in the Response, not as an error.
func (c *Client) Publish(ctx context.Context, events ...*event.Event) (*Response, error) {
	if len(events) == 0 {
		return nil, errors.New("ingress: nothing to publish")
	}
	msg := nats.NewMsg(c.subject)
	if len(events) == 1 {
		msg.Header.Set("Content-Type", MediaStructured)
		msg.Data, _ = events[0].MarshalJSON() // never fails
	} else {
		msg.Header.Set("Content-Type", MediaBatch)
		msg.Data = event.MarshalBatch(events)
	}
	return c.Send(ctx, msg)
}

// Send sends a prepared request (any payload the ingress reads) and decodes the answer.
// The message goes to the client's subject, whatever msg.Subject says.
func (c *Client) Send(ctx context.Context, msg *nats.Msg) (*Response, error) {
	msg.Subject = c.subject
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w on %s (is `jetmesh server` running?)", ErrNoIngress, c.nc.ConnectedUrlRedacted())
	}
	if err != nil {
		return nil, fmt.Errorf("ingress request: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return &resp, nil
}

// Resubmit sends a prepared request and sums up the answer for a redrive (see
// dlq.Resubmit): accepted when every entry was, with the first entry's sequence; the
// refusal otherwise. An answer that asks to try again later (unavailable, timed out,
// refused access) is an error, so the record is left for the next run.
func (c *Client) Resubmit(ctx context.Context, msg *nats.Msg) (accepted bool, seq uint64, refusal string, err error) {
	resp, err := c.Send(ctx, msg)
	if err != nil {
		return false, 0, "", err
	}
	if e := resp.Error; e != nil {
		switch e.Code {
		case CodeUnavailable, CodeRequestTimeout, CodeUnauthorized, CodeForbidden:
			return false, 0, "", fmt.Errorf("ingress answered %s: %s", e.Code, e.Message)
		}
		return false, 0, e.Code + ": " + e.Message, nil
	}
	var refusals []string
	for _, en := range resp.Entries {
		switch {
		case en.ErrorCode == CodeUnavailable || en.ErrorCode == CodeForbidden:
			return false, 0, "", fmt.Errorf("ingress answered %s: %s", en.ErrorCode, en.ErrorMessage)
		case !en.Accepted():
			refusals = append(refusals, en.ErrorCode+": "+en.ErrorMessage)
		case seq == 0:
			seq = en.Sequence
		}
	}
	if len(refusals) > 0 {
		return false, seq, strings.Join(refusals, "; "), nil
	}
	return true, seq, "", nil
}
