package ingress_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/schemas"
)

func benchSet(t testing.TB) *schemas.Set {
	t.Helper()
	set, problems := schemas.Compile(schemas.NewCatalog([]schemas.Document{{Type: "orders.created", Version: 1, Raw: []byte(benchSchema)}}))
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	return set
}

// TestSchemaValidation: in a batch, valid data is stored, data breaking its schema and
// unknown types are refused per entry with their codes and DLQ records; with
// AllowUnknownTypes the unknown type is stored unvalidated while known types stay checked.
func TestSchemaValidation(t *testing.T) {
	good := structured("ok-1", "orders.created", `{"orderId":"o","customer":"c","amount":1,"currency":"EUR"}`)
	bad := structured("bad-1", "orders.created", `{"orderId":"o","customer":"c","amount":1,"currency":"GBP"}`)
	unknown := structured("unk-1", "orders.shipped", `{}`)
	batch := []byte("[" + good + "," + bad + "," + unknown + "]")

	f := setupWith(t, natstest.RunServer(t), []ingress.Option{ingress.WithValidator(benchSet(t))})
	code, resp := f.post(t, ingress.MediaBatch, nil, batch)
	if code != http.StatusMultiStatus || resp.FailedEntryCount != 2 {
		t.Fatalf("status %d %+v", code, resp)
	}
	if r := resp.Entries[1]; r.ErrorCode != ingress.CodeSchemaInvalid || r.Field != "data" || !strings.Contains(r.ErrorMessage, "/currency") {
		t.Errorf("schema_invalid entry: %+v", r)
	}
	if r := resp.Entries[2]; r.ErrorCode != ingress.CodeUnknownType || r.Field != "type" {
		t.Errorf("unknown_type entry: %+v", r)
	}
	last := f.lastSeq(t, bus.DLQStream)
	reasons := map[string]string{}
	for seq := last - 1; seq <= last; seq++ {
		m := f.msg(t, bus.DLQStream, seq)
		rec, err := dlq.Parse(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		reasons[rec.Reason] = string(rec.Body)
		if m.Subject != "dlq.ingress."+rec.Reason {
			t.Errorf("subject %s for reason %s", m.Subject, rec.Reason)
		}
	}
	if !strings.Contains(reasons[dlq.ReasonSchemaInvalid], `"bad-1"`) || !strings.Contains(reasons[dlq.ReasonUnknownType], `"unk-1"`) {
		t.Errorf("DLQ records: %v", reasons)
	}

	open := setupWith(t, natstest.RunServer(t), []ingress.Option{ingress.WithValidator(benchSet(t))},
		func(c *ingress.Config) { c.AllowUnknownTypes = true })
	code, resp = open.post(t, ingress.MediaBatch, nil, batch)
	if code != http.StatusMultiStatus || resp.FailedEntryCount != 1 || !resp.Entries[2].Accepted() || resp.Entries[1].ErrorCode != ingress.CodeSchemaInvalid {
		t.Fatalf("allowUnknownTypes: %d %+v", code, resp)
	}
}
