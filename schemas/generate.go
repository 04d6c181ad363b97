package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/invopop/jsonschema"
	"github.com/jetmesh/jetmesh/event"
)

// Generate returns the JSON Schema (draft 2020-12) of a Go value's type, so a Go service
// keeps its event structs as the one source of truth. Field names and optionality follow
// the json tags; `jsonschema:"..."` tags add constraints (minimum, enum, format, …). Structs
// are closed (additionalProperties: false), which makes removing a field a visible,
// breaking change and adding one a compatible change.
func Generate(v any) ([]byte, error) {
	r := &jsonschema.Reflector{Anonymous: true, ExpandedStruct: true}
	sch := r.Reflect(v)
	raw, err := json.Marshal(sch)
	if err != nil {
		return nil, fmt.Errorf("generating schema: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, fmt.Errorf("generating schema: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// WriteVersion stores a schema document in a catalog directory as the type's next version
// (<dir>/<type>/v<N+1>.json). When the latest version already holds the same schema it
// writes nothing and returns that version with written false, so generating again after
// no change is a no-op.
func WriteVersion(dir, eventType string, doc []byte) (path string, version int, written bool, err error) {
	if err := event.ValidateType(eventType); err != nil {
		return "", 0, false, err
	}
	if _, err := decode(doc); err != nil {
		return "", 0, false, fmt.Errorf("schema is not JSON: %w", err)
	}
	typeDir := filepath.Join(dir, eventType)
	latest := 0
	for {
		p := filepath.Join(typeDir, "v"+strconv.Itoa(latest+1)+".json")
		if _, err := os.Stat(p); err != nil {
			break
		}
		latest++
	}
	if latest > 0 {
		p := filepath.Join(typeDir, "v"+strconv.Itoa(latest)+".json")
		prev, err := os.ReadFile(p)
		if err != nil {
			return "", 0, false, err
		}
		if Equal(prev, doc) {
			return p, latest, false, nil
		}
	}
	version = latest + 1
	path = filepath.Join(typeDir, "v"+strconv.Itoa(version)+".json")
	if err := os.MkdirAll(typeDir, 0o755); err != nil {
		return "", 0, false, err
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		return "", 0, false, err
	}
	return path, version, true, nil
}
