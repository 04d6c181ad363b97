package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/spf13/cobra"
)

func newCredsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Mint, list and revoke credentials (servers with access control)",
		Long: `With access control on (jetmesh server --auth), every client proves a principal:
admin (everything), publisher (publish through the ingress, optionally limited to
event types and a source), sidecar of a service (deliver that service's rules and
publish as it), viewer (read streams, rules, schemas and the DLQ).

'creds add' writes a NATS credentials file, usable as --creds by jetmesh and by the
nats CLI, and prints the principal's HTTP bearer token as the last line. Both are
shown once: keep them as secrets. 'creds revoke' cuts the principal's connections
and refuses its credentials and token within moments. Run these as an admin
(the server writes the first admin's credentials to <data>/auth/admin.creds).`,
		Example: `  jetmesh --creds data/auth/admin.creds creds add --role sidecar --name billing-sidecar --service billing --out billing.creds
  jetmesh creds add --role publisher --name shop --types 'orders.>' --out shop.creds
  jetmesh creds ls
  jetmesh creds revoke shop`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newCredsAddCmd(g), newCredsLsCmd(g), newCredsRevokeCmd(g))
	return cmd
}

// credsRequest asks the server's credential service, as the --creds admin.
func (g *globals) credsRequest(ctx context.Context, subject string, req any) (*auth.AddReply, error) {
	nc, err := g.connect("creds")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	reply, err := auth.Ask(ctx, nc, subject, req)
	var rerr *auth.ReplyError
	switch {
	case errors.As(err, &rerr) && rerr.Refused:
		return nil, refused("%s", rerr.Msg)
	case errors.As(err, &rerr):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("the server's credential service did not answer (is access control on, and are --creds an admin's?): %w", err)
	}
	return reply, nil
}

func newCredsAddCmd(g *globals) *cobra.Command {
	var req auth.AddRequest
	var role, out string
	cmd := &cobra.Command{
		Use:   "add --role ROLE --name NAME --out FILE",
		Short: "Create a principal: write its credentials file and print its bearer token",
		Long: `Creates a principal and writes its NATS credentials file to --out (mode 0600). The
last line printed is its HTTP bearer token (Authorization: Bearer <token> on
POST /v1/events). Names are never reused, even after a revocation.

Roles: admin, publisher, sidecar, viewer. --service is required for a sidecar (the
target.service of its rules). --types limits a publisher (or sidecar) to event types,
as tail patterns: orders.created, orders.*, orders.>. --source fixes the only source
a publisher may use.`,
		Example: `  jetmesh creds add --role sidecar --name billing-1 --service billing --out billing.creds
  jetmesh creds add --role publisher --name shop --types 'orders.>' --types 'payments.*' --source /shop --out shop.creds
  jetmesh creds add --role viewer --name console --out console.creds`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return refused("--out FILE is required: where to write the credentials")
			}
			req.Role = auth.Role(role)
			reply, err := g.credsRequest(cmd.Context(), auth.AddSubject, req)
			if err != nil {
				return err
			}
			if err := auth.WriteCreds(out, []byte(reply.Creds)); err != nil {
				return fmt.Errorf("writing %s: %w (the principal exists: revoke it and add another)", out, err)
			}
			if g.output == "json" {
				return writeJSON(g.stdout, struct {
					Principal *auth.Principal `json:"principal"`
					CredsFile string          `json:"credsFile"`
					Token     string          `json:"token"`
				}{reply.Principal, out, reply.Token})
			}
			fmt.Fprintf(g.stdout, "created %s (%s); credentials written to %s\n", reply.Principal.Name, reply.Principal.Role, out)
			fmt.Fprintln(g.stdout, reply.Token)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "admin, publisher, sidecar or viewer (required)")
	f.StringVar(&req.Name, "name", "", "principal name: a-z, 0-9, - and _ (required)")
	f.StringVar(&req.Service, "service", "", "the service a sidecar delivers for")
	f.StringArrayVar(&req.Types, "types", nil, "event types a publisher may publish, as tail patterns (repeatable)")
	f.StringVar(&req.Source, "source", "", "the only source a publisher may use")
	f.StringVar(&out, "out", "", "where to write the credentials file (required)")
	return cmd
}

func newCredsLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List principals: name, role, limits, and whether revoked",
		Example: `  jetmesh creds ls -o json`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := g.jetStream("creds")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			reg, err := auth.OpenRegistry(ctx, js)
			if err != nil {
				return err
			}
			ps, err := reg.List(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if ps == nil {
					ps = []auth.Principal{}
				}
				return writeJSON(g.stdout, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(g.stdout, "no principals (is access control on?)")
				return nil
			}
			t := newTable(g.stdout, "NAME", "ROLE", "SERVICE", "TYPES", "SOURCE", "CREATED", "REVOKED")
			for _, p := range ps {
				revoked := "-"
				if p.Revoked != nil {
					revoked = p.Revoked.Format(time.RFC3339)
				}
				t.row(p.Name, p.Role, dash(p.Service), dash(strings.Join(p.Types, ",")), dash(p.Source), p.Created.Format(time.RFC3339), revoked)
			}
			return t.flush()
		},
	}
}

func newCredsRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a principal: cut its connections, refuse its credentials and token",
		Long: `Marks the principal revoked. Every server cuts its open connections and refuses its
credentials and bearer token from then on (within moments: servers follow the
principals bucket live). Its name is never reused.`,
		Example: `  jetmesh creds revoke shop`,
		Args:    exactArgs(1, "a principal name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reply, err := g.credsRequest(cmd.Context(), auth.RevokeSubject, auth.RevokeRequest{Name: args[0]})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, reply.Principal)
			}
			fmt.Fprintf(g.stdout, "revoked %s\n", reply.Principal.Name)
			return nil
		},
	}
}
