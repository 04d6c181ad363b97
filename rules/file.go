package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ParseFile reads rules from a YAML or JSON document: one rule as a mapping, a list of
// rules, or several YAML documents of either form. Each rule gets its defaults and is
// validated; the error lists every problem of every rule, each with its place
// ("rules.yaml: rule 2 (billing): ...").
func ParseFile(name string, data []byte) ([]Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Rule
	var problems []string
	for doc := 1; ; doc++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidRule, name, err)
		}
		var items []any
		switch x := v.(type) {
		case nil:
			continue // empty document
		case []any:
			items = x
		case map[string]any:
			items = []any{x}
		default:
			return nil, fmt.Errorf("%w: %s: document %d must be a rule (a mapping) or a list of rules", ErrInvalidRule, name, doc)
		}
		for _, item := range items {
			n := len(out) + len(problems) + 1
			r, err := decodeRule(item)
			if err == nil {
				r.SetDefaults()
				err = r.Validate()
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: rule %d: %s", name, n, strings.TrimPrefix(err.Error(), ErrInvalidRule.Error()+" ")))
				continue
			}
			out = append(out, r)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrInvalidRule, strings.Join(problems, "\n  "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no rules", ErrInvalidRule, name)
	}
	return out, nil
}

// decodeRule turns one YAML/JSON mapping into a Rule, refusing unknown fields.
func decodeRule(item any) (Rule, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return Rule{}, fmt.Errorf("must be a mapping with name, pattern, target, ...")
	}
	name, _ := m["name"].(string)
	if st, ok := m["startTime"]; ok && st != nil {
		// YAML may already have read it as a time; a string must be RFC 3339. The JSON
		// decoder's own message would name a Go layout, not the field.
		if s, isString := st.(string); isString {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return Rule{}, fmt.Errorf("%s: startTime %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", name, s)
			}
		} else if _, isTime := st.(time.Time); !isTime {
			return Rule{}, fmt.Errorf("%s: startTime must be an RFC 3339 time such as 2026-11-01T00:00:00Z, got %v", name, st)
		}
	}
	raw, err := marshal(jsonable(m))
	if err != nil {
		return Rule{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r Rule
	if err := dec.Decode(&r); err != nil {
		if name != "" {
			return Rule{}, fmt.Errorf("%s: %v", name, err)
		}
		return Rule{}, err
	}
	if len(r.Pattern) > 0 {
		var compact bytes.Buffer
		if err := json.Compact(&compact, r.Pattern); err == nil {
			r.Pattern = compact.Bytes()
		}
	}
	return r, nil
}

// marshal is json.Marshal without HTML escaping: patterns hold ">" and "<".
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// jsonable converts what YAML decoded into values encoding/json accepts (timestamps as
// RFC 3339 strings, keys as strings).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// Load reads rules from a file, or from every .yaml, .yml and .json file under a
// directory (in name order). Rule names must be unique across everything loaded.
func Load(path string) ([]Rule, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	files := []string{path}
	if info.IsDir() {
		files = nil
		err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					files = append(files, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: no .yaml, .yml or .json files under %s", ErrInvalidRule, path)
		}
	}
	var all []Rule
	var errs []error
	seen := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		rs, err := ParseFile(f, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			if prev, dup := seen[r.Name]; dup {
				errs = append(errs, fmt.Errorf("%w: rule %q is defined twice (%s and %s)", ErrInvalidRule, r.Name, prev, f))
				continue
			}
			seen[r.Name] = f
			all = append(all, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}
