package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jetmesh/jetmesh/schemas"
	"github.com/spf13/cobra"
)

func newSchemasCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schemas",
		Short: "Check, generate and deploy the JSON Schemas events are validated against",
		Long: `A schema catalog is a directory in git with one JSON Schema per event type and
version: <dir>/<type>/v<N>.json (N = 1, 2, ...). Files may $ref each other by their
place in the catalog ("../money/v1.json").

Review changes in pull requests with 'schemas check', deploy them with 'schemas push';
the server validates every published event's data against the latest version of its
type (or the version its dataschema names) and picks up pushed versions within a second.
Pushed versions never change: evolve a schema by adding v<N+1>, which must accept every
event v<N> accepted.`,
		Example: `  jetmesh schemas check ./catalog
  jetmesh schemas diff ./catalog
  jetmesh schemas push ./catalog
  jetmesh schemas ls
  jetmesh schemas show orders.created --version 1`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newSchemasCheckCmd(g), newSchemasPushCmd(g), newSchemasDiffCmd(g),
		newSchemasLsCmd(g), newSchemasShowCmd(g), newSchemasGenCmd(g))
	return cmd
}

// errCheckFailed exits 1: the catalog has problems (not a usage error).
var errCheckFailed = errors.New("schema check failed")

// loadCatalog reads DIR, refusing a path that is not a catalog directory.
func loadCatalog(dir string) (*schemas.Catalog, schemas.Problems, error) {
	c, layout, err := schemas.LoadDir(dir)
	if err != nil {
		return nil, nil, refused("%v", err)
	}
	return c, layout, nil
}

func newSchemasCheckCmd(g *globals) *cobra.Command {
	var againstServer, allowBreaking bool
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "Check a catalog: valid schemas, consistent names, backward-compatible versions",
		Long: `Checks every file of the catalog in DIR: it sits at <type>/v<N>.json, versions run
1, 2, ... without holes, it is a valid JSON Schema (draft 2020-12 unless it says
otherwise) whose $refs resolve inside the catalog, and each version accepts all data the
previous version accepted (no new required property, no narrowed type or enum, no
tightened bound, pattern or format, no property removed from a closed object, ...).

Prints one line per problem, "file: /json/pointer: rule: message", and exits 1 when
there is any. --against-server also compares with the registry: versions already pushed
must be unchanged, and the first new version must be compatible with the pushed one.`,
		Example: `  jetmesh schemas check ./catalog
  jetmesh schemas check ./catalog --against-server --server nats://jetmesh:4222
  jetmesh schemas check ./catalog --allow-breaking   # a deliberate, announced break`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, layout, err := loadCatalog(args[0])
			if err != nil {
				return err
			}
			report := schemas.Check(c, layout)
			if againstServer {
				registry, err := g.registryCatalog(cmd.Context())
				if err != nil {
					return err
				}
				plan := schemas.PlanPush(c, registry, nil)
				report.Problems = append(report.Problems, plan.Problems...)
				report.Breaking = appendNew(report.Breaking, plan.Breaking)
			}
			if err := printReport(g, report, allowBreaking); err != nil {
				return err
			}
			if g.output == "text" && report.OK(allowBreaking) {
				fmt.Fprintf(g.stdout, "ok: %d types, %d versions\n", len(c.Types()), len(c.Docs))
			}
			return reportErr(report, allowBreaking)
		},
	}
	cmd.Flags().BoolVar(&againstServer, "against-server", false, "also check against the versions already in the registry")
	cmd.Flags().BoolVar(&allowBreaking, "allow-breaking", false, "report incompatible versions but do not fail on them")
	return cmd
}

// appendNew adds the problems of b that a does not hold yet.
func appendNew(a, b schemas.Problems) schemas.Problems {
	seen := map[schemas.Problem]bool{}
	for _, p := range a {
		seen[p] = true
	}
	for _, p := range b {
		if !seen[p] {
			a = append(a, p)
		}
	}
	return a
}

func printReport(g *globals, r schemas.Report, allowBreaking bool) error {
	if g.output == "json" {
		if r.Problems == nil {
			r.Problems = schemas.Problems{}
		}
		if r.Breaking == nil {
			r.Breaking = schemas.Problems{}
		}
		return writeJSON(g.stdout, struct {
			OK bool `json:"ok"`
			schemas.Report
		}{r.OK(allowBreaking), r})
	}
	for _, p := range r.Problems {
		fmt.Fprintln(g.stdout, p)
	}
	for _, p := range r.Breaking {
		if allowBreaking {
			fmt.Fprintln(g.stdout, "allowed:", p)
		} else {
			fmt.Fprintln(g.stdout, p)
		}
	}
	return nil
}

func reportErr(r schemas.Report, allowBreaking bool) error {
	if r.OK(allowBreaking) {
		return nil
	}
	n := len(r.Problems)
	if !allowBreaking {
		n += len(r.Breaking)
	}
	hint := ""
	if len(r.Problems) == 0 {
		hint = " (every one is an incompatible change: add --allow-breaking only for a deliberate break)"
	}
	return fmt.Errorf("%w: %d problem%s%s", errCheckFailed, n, plural(n), hint)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// registryCatalog reads the whole registry from the server.
func (g *globals) registryCatalog(ctx context.Context) (*schemas.Catalog, error) {
	reg, done, err := g.registry(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return reg.Catalog(ctx)
}

// registry opens the mesh-schemas bucket on the server; done closes the connection.
func (g *globals) registry(ctx context.Context) (*schemas.Registry, func(), error) {
	nc, js, err := g.jetStream("schemas")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	reg, err := schemas.OpenRegistry(ctx, js)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return reg, nc.Close, nil
}

// planFor compares DIR with the registry: what a push would do.
func (g *globals) planFor(ctx context.Context, dir string) (schemas.Plan, error) {
	c, layout, err := loadCatalog(dir)
	if err != nil {
		return schemas.Plan{}, err
	}
	registry, err := g.registryCatalog(ctx)
	if err != nil {
		return schemas.Plan{}, err
	}
	return schemas.PlanPush(c, registry, layout), nil
}

// planJSON is the --output json shape of push and diff.
type planJSON struct {
	Add       []string         `json:"add"`
	Unchanged []string         `json:"unchanged"`
	Problems  schemas.Problems `json:"problems"`
	Breaking  schemas.Problems `json:"breaking"`
	Pushed    bool             `json:"pushed"`
}

func printPlan(g *globals, p schemas.Plan, allowBreaking, pushed bool) error {
	if g.output == "json" {
		out := planJSON{Add: []string{}, Unchanged: []string{}, Problems: p.Problems, Breaking: p.Breaking, Pushed: pushed}
		for _, d := range p.Add {
			out.Add = append(out.Add, d.Key())
		}
		for _, d := range p.Unchanged {
			out.Unchanged = append(out.Unchanged, d.Key())
		}
		if out.Problems == nil {
			out.Problems = schemas.Problems{}
		}
		if out.Breaking == nil {
			out.Breaking = schemas.Problems{}
		}
		return writeJSON(g.stdout, out)
	}
	for _, d := range p.Add {
		fmt.Fprintf(g.stdout, "+ %s v%d  (%s)\n", d.Type, d.Version, d.Origin)
	}
	for _, d := range p.Unchanged {
		fmt.Fprintf(g.stdout, "= %s v%d  unchanged\n", d.Type, d.Version)
	}
	for _, pr := range p.Problems {
		fmt.Fprintln(g.stdout, "!", pr)
	}
	for _, pr := range p.Breaking {
		mark := "!"
		if allowBreaking {
			mark = "! allowed:"
		}
		fmt.Fprintln(g.stdout, mark, pr)
	}
	return nil
}

func newSchemasPushCmd(g *globals) *cobra.Command {
	var allowBreaking, dryRun bool
	cmd := &cobra.Command{
		Use:   "push DIR",
		Short: "Deploy a catalog's new versions to the registry the server validates against",
		Long: `Compares the catalog in DIR with the registry (the mesh-schemas KV bucket) and
writes the versions the registry lacks. It refuses, writing nothing, when a version
already pushed was changed (pushed versions are immutable: add a new version), when the
catalog lacks a version the registry has, when a file is not a valid schema, or when a
new version is incompatible with its predecessor (unless --allow-breaking).

Prints "+ type vN" for each version written and "= type vN" for each already there.
Servers apply pushed versions within a second, without restart.`,
		Example: `  jetmesh schemas push ./catalog
  jetmesh schemas push ./catalog --dry-run
  jetmesh schemas push ./catalog -o json`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := g.planFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !plan.OK(allowBreaking) || dryRun || len(plan.Add) == 0 {
				if err := printPlan(g, plan, allowBreaking, false); err != nil {
					return err
				}
				if err := reportErr(plan.Report, allowBreaking); err != nil {
					return fmt.Errorf("nothing pushed: %w", err)
				}
				if g.output == "text" {
					if dryRun {
						fmt.Fprintf(g.stdout, "dry run: %d version%s would be pushed\n", len(plan.Add), plural(len(plan.Add)))
					} else {
						fmt.Fprintln(g.stdout, "registry already up to date")
					}
				}
				return nil
			}
			reg, done, err := g.registry(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := reg.Push(ctx, plan.Add); err != nil {
				return err
			}
			if err := printPlan(g, plan, allowBreaking, true); err != nil {
				return err
			}
			if g.output == "text" {
				fmt.Fprintf(g.stdout, "pushed %d version%s\n", len(plan.Add), plural(len(plan.Add)))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&allowBreaking, "allow-breaking", false, "push incompatible versions too (a deliberate break)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be pushed, write nothing")
	return cmd
}

func newSchemasDiffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff DIR",
		Short: "Show what 'schemas push DIR' would change in the registry",
		Long: `Lines start with "+" for versions push would write, "=" for versions already in the
registry, and "!" for problems that would make push refuse. Exits 0 either way; use
'schemas check DIR --against-server' in CI to fail on problems.`,
		Example: "  jetmesh schemas diff ./catalog\n  jetmesh schemas diff ./catalog -o json | jq .add",
		Args:    exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := g.planFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printPlan(g, plan, false, false)
		},
	}
}

// schemaRow is one type in `schemas ls` and its --output json shape.
type schemaRow struct {
	Type     string `json:"type"`
	Versions []int  `json:"versions"`
	Latest   int    `json:"latest"`
}

func newSchemasLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List the event types in the registry and their versions",
		Example: "  jetmesh schemas ls\n  jetmesh schemas ls -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.registryCatalog(cmd.Context())
			if err != nil {
				return err
			}
			rows := []schemaRow{}
			for _, t := range c.Types() {
				row := schemaRow{Type: t}
				for _, d := range c.Versions(t) {
					row.Versions = append(row.Versions, d.Version)
					row.Latest = d.Version
				}
				rows = append(rows, row)
			}
			if g.output == "json" {
				return writeJSON(g.stdout, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(g.stdout, "no schemas registered: push a catalog with `jetmesh schemas push DIR`")
				return nil
			}
			tbl := newTable(g.stdout, "TYPE", "LATEST", "VERSIONS")
			for _, r := range rows {
				vs := ""
				for i, v := range r.Versions {
					if i > 0 {
						vs += ","
					}
					vs += "v" + strconv.Itoa(v)
				}
				tbl.row(r.Type, "v"+strconv.Itoa(r.Latest), vs)
			}
			return tbl.flush()
		},
	}
}

func newSchemasShowCmd(g *globals) *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "show TYPE",
		Short: "Print a type's schema from the registry (the latest version unless --version)",
		Example: `  jetmesh schemas show orders.created
  jetmesh schemas show orders.created --version 1 > catalog/orders.created/v1.json`,
		Args: exactArgs(1, "TYPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 0 {
				return refused("--version must be 1 or more, got %d", version)
			}
			reg, done, err := g.registry(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			d, err := reg.Get(ctx, args[0], version)
			if errors.Is(err, schemas.ErrNotFound) {
				return refused("%v: see `jetmesh schemas ls`", err)
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, struct {
					Type    string          `json:"type"`
					Version int             `json:"version"`
					Schema  json.RawMessage `json:"schema"`
				}{d.Type, d.Version, d.Raw})
			}
			_, err = io.Copy(g.stdout, bytes.NewReader(d.Raw))
			if err == nil && !bytes.HasSuffix(d.Raw, []byte("\n")) {
				fmt.Fprintln(g.stdout)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "version number (default: the latest)")
	return cmd
}
