package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitRefused = 2
)

// DefaultServer is the NATS URL admin commands use without --server or JETMESH_SERVER.
const DefaultServer = "nats://127.0.0.1:4222"

// ErrRefused marks input that was refused: bad flags, a rejected event. It exits 2.
var ErrRefused = errors.New("refused")

// refusedError is an ErrRefused whose message stands alone.
type refusedError struct{ msg string }

func (e *refusedError) Error() string        { return e.msg }
func (e *refusedError) Is(target error) bool { return target == ErrRefused }

// refused returns an error that exits 2.
func refused(format string, args ...any) error {
	return &refusedError{msg: fmt.Sprintf(format, args...)}
}

// globals are the options every command shares.
type globals struct {
	server string
	// creds is a credentials file (--creds, JETMESH_CREDS), for servers with access control.
	creds string
	// tlsCA, tlsCert and tlsKey are for servers with TLS: the CA that signs the server's
	// certificate, and a client certificate where the server asks for one.
	tlsCA, tlsCert, tlsKey string
	output                 string
	stdout                 io.Writer
	// version is this binary's, which servers and sidecars announce (jetmesh status).
	version string
	stderr  io.Writer
}

// Execute runs the CLI with os.Args and returns the process exit code.
func Execute(version string) int {
	if version == "" {
		version = buildVersion()
	}
	return run(context.Background(), version, os.Args[1:], os.Stdout, os.Stderr)
}

func run(ctx context.Context, version string, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(version, stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	if errors.Is(err, ErrRefused) {
		code = ExitRefused
	}
	if out, _ := cmd.PersistentFlags().GetString("output"); out == "json" {
		// Scripts that asked for JSON get their error as JSON too, on stderr as always.
		kind := map[int]string{ExitRefused: "refused", ExitFailure: "failure"}[code]
		_ = writeJSON(stderr, struct {
			Error jsonError `json:"error"`
		}{jsonError{Kind: kind, Message: err.Error(), ExitCode: code}})
		return code
	}
	fmt.Fprintf(stderr, "jetmesh: %s\n", err)
	return code
}

// jsonError is how a failed command reports under --output json.
type jsonError struct {
	// Kind is "refused" (bad input: exit 2) or "failure" (exit 1).
	Kind     string `json:"kind"`
	Message  string `json:"message"`
	ExitCode int    `json:"exitCode"`
}

func newRootCmd(version string, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr, version: version}
	root := &cobra.Command{
		Use:   "jetmesh",
		Short: "Self-hosted event bus for microservices, on NATS JetStream",
		Long: `jetmesh is an event bus for microservices: one stream of CloudEvents, JSON Schema
validation at publish, declarative rules that route events to services, and a
dead-letter queue, on an embedded NATS JetStream.

Start a server, register the schemas of your event types, then publish and watch
events:

  jetmesh server
  jetmesh schemas push ./catalog
  jetmesh publish --type orders.created --source /shop --data '{"amount":120}'
  jetmesh tail 'orders.>'

Admin commands reach the server over NATS: --server, or JETMESH_SERVER
(default ` + DefaultServer + `).`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          unknownSubcommand,
		RunE:          showHelp,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return refused("--output must be text or json, got %q", g.output)
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return refused("%v (see '%s --help')", err, cmd.CommandPath())
	})
	server := os.Getenv("JETMESH_SERVER")
	if server == "" {
		server = DefaultServer
	}
	root.PersistentFlags().StringVar(&g.server, "server", server, "NATS URL of the jetmesh server (env JETMESH_SERVER)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.PersistentFlags().StringVar(&g.tlsCA, "tls-ca", os.Getenv("JETMESH_TLS_CA"), "PEM file of the CA that signs the server's certificate, for a TLS server (env JETMESH_TLS_CA)")
	root.PersistentFlags().StringVar(&g.tlsCert, "tls-client-cert", os.Getenv("JETMESH_TLS_CLIENT_CERT"), "client certificate (PEM), where the server verifies clients")
	root.PersistentFlags().StringVar(&g.tlsKey, "tls-client-key", os.Getenv("JETMESH_TLS_CLIENT_KEY"), "client certificate key (PEM)")
	root.PersistentFlags().StringVar(&g.creds, "creds", os.Getenv("JETMESH_CREDS"), "credentials file, for a server with access control (env JETMESH_CREDS; jetmesh creds add)")
	root.AddCommand(
		newServerCmd(g),
		newPublishCmd(g),
		newStreamsCmd(g),
		newTailCmd(g),
		newDLQCmd(g),
		newReplayCmd(g),
		newEventsCmd(g),
		newStatusCmd(g),
		newSchemasCmd(g),
		newRulesCmd(g),
		newSidecarCmd(g),
		newBenchCmd(g),
		newCredsCmd(g),
	)
	return root
}

// credentials reads --creds, or returns nil without it.
func (g *globals) credentials() (*auth.Credentials, error) {
	if g.creds == "" {
		return nil, nil
	}
	c, err := auth.ReadCredentials(g.creds)
	if err != nil {
		return nil, refused("--creds: %v", err)
	}
	return c, nil
}

// tlsOptions are the NATS options of --tls-ca and --tls-client-cert/--tls-client-key.
func (g *globals) tlsOptions() []nats.Option {
	var opts []nats.Option
	if g.tlsCA != "" {
		opts = append(opts, nats.RootCAs(g.tlsCA))
	}
	if g.tlsCert != "" || g.tlsKey != "" {
		opts = append(opts, nats.ClientCert(g.tlsCert, g.tlsKey))
	}
	return opts
}

// connect opens a NATS connection to the server named by --server, with --creds.
func (g *globals) connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("jetmesh-" + name), nats.Timeout(5 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// The server refuses quietly (a request then times out): say why at once.
			if errors.Is(err, nats.ErrPermissionViolation) {
				fmt.Fprintf(g.stderr, "jetmesh: %v: the --creds principal may not do this (see docs/security.md)\n", err)
			}
		})}
	creds, err := g.credentials()
	if err != nil {
		return nil, err
	}
	if creds != nil {
		credOpts, err := creds.Options()
		if err != nil {
			return nil, refused("--creds: %v", err)
		}
		opts = append(opts, credOpts...)
	}
	opts = append(opts, g.tlsOptions()...)
	nc, err := nats.Connect(g.server, opts...)
	if errors.Is(err, nats.ErrAuthorization) || err != nil && strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		return nil, fmt.Errorf("connecting to %s: %w (the server has access control on: give --creds FILE or JETMESH_CREDS)", g.server, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w (is `jetmesh server` running? set --server or JETMESH_SERVER)", g.server, err)
	}
	return nc, nil
}

// jetStream connects like connect and returns a JetStream client on that connection; the
// caller closes the connection.
func (g *globals) jetStream(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := g.connect(name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// jetStreamCall connects for one command bounded by timeout: done ends the context and
// closes the connection.
func (g *globals) jetStreamCall(parent context.Context, name string, timeout time.Duration) (context.Context, jetstream.JetStream, func(), error) {
	nc, js, err := g.jetStream(name)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	return ctx, js, func() { cancel(); nc.Close() }, nil
}

// ingressClient is the ingress client on nc, as the --creds principal when given.
func (g *globals) ingressClient(nc *nats.Conn) (*ingress.Client, error) {
	creds, err := g.credentials()
	if err != nil {
		return nil, err
	}
	var as []ingress.ClientOption
	if creds != nil {
		as = append(as, ingress.AsPrincipal(creds.Name))
	}
	return ingress.NewClient(nc, as...), nil
}

// noArgs is cobra.NoArgs with a refused error, so it exits 2.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return refused("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// unknownSubcommand refuses arguments to a command group: they name no subcommand.
// Command groups use it with showHelp, so a typo exits 2 instead of printing help.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return refused("unknown command %q (see '%s --help')", args[0], cmd.CommandPath())
	}
	return nil
}

func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// exactArgs refuses (exit 2) anything but n positional arguments, naming them.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return refused("%s takes %s, got %d argument%s (see '%s --help')", cmd.CommandPath(), names, len(args), plural(len(args)), cmd.CommandPath())
		}
		return nil
	}
}

// note tells the user on stderr about something the command is doing about a problem.
func (g *globals) note(err error) { fmt.Fprintf(g.stderr, "jetmesh: %v\n", err) }

// actor names who runs a command, for the records it leaves (redrive marks, replays).
func (g *globals) actor() (string, error) {
	creds, err := g.credentials()
	if err != nil || creds == nil {
		return "admin (no access control)", err
	}
	return creds.Name, nil
}
