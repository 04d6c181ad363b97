package rules

import (
	"strings"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/jsonx"
)

// StoredEvent is the structured form a pattern matches, rebuilt from a stored event's
// headers (ce-* attributes, Content-Type as datacontenttype) and, when withData is set and
// the data is JSON, its decoded data.
func StoredEvent(header map[string][]string, data []byte, withData bool) map[string]any {
	ev := make(map[string]any, len(header)+1)
	contentType := event.DefaultContentType
	for k, vs := range header {
		if len(vs) == 0 {
			continue
		}
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "ce-"); ok {
			ev[name] = vs[0]
		} else if lk == "content-type" {
			ev["datacontenttype"] = vs[0]
			contentType = vs[0]
		}
	}
	if withData && len(data) > 0 && event.IsJSON(contentType) {
		if v, err := jsonx.Decode(data); err == nil {
			ev["data"] = ExpandDottedKeys(v)
		}
	}
	return ev
}
