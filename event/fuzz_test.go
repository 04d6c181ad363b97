package event_test

import (
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/jetmesh/jetmesh/event"
)

// FuzzParseStructured: any input is accepted or refused with an *event.Error, never a panic;
// whatever is accepted survives the stored binary form and the structured form unchanged.
func FuzzParseStructured(f *testing.F) {
	for _, s := range []string{valid, `{}`, `[]`, `null`, `{"specversion":"1.0","id":"1","source":"/s","type":"a","data_base64":"AA=="}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"a.b","datacontenttype":"text/plain","data":"x","ext":true}`,
		`{"specversion":"1.0","id":"\udbffx","source":"/s","type":"a"}`, `{"specversion":"1.0","id":"1","id":"1","source":"/s","type":"a"}`,
		"{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"/s\",\"type\":\"a\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := event.ParseStructured(raw, 0)
		if err != nil {
			var ee *event.Error
			if !errors.As(err, &ee) {
				t.Fatalf("error %T %v is not *event.Error", err, err)
			}
			return
		}
		stored, err := event.ParseNATSBinary(ev.Header(), ev.Data, 0)
		if err != nil {
			t.Fatalf("stored form of an accepted event is refused: %v", err)
		}
		js, err := stored.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := event.ParseStructured(js, 1<<30)
		if err != nil {
			t.Fatalf("structured form %s is refused: %v", js, err)
		}
		if !back.Time.Equal(stored.Time) {
			t.Fatalf("time changed: %v vs %v", back.Time, stored.Time)
		}
		back.Time = stored.Time
		if !reflect.DeepEqual(back, stored) {
			t.Fatalf("round trip changed the event\n%+v\n%+v", stored, back)
		}
	})
}

// FuzzParseHTTPBinary: arbitrary headers and bodies never panic the binary-mode parser.
func FuzzParseHTTPBinary(f *testing.F) {
	f.Add("1.0", "id", "/s", "orders.created", "application/json", "sub", "2024-01-01T00:00:00Z", []byte(`{"a":1}`))
	f.Add("1.0", "", "%zz", "A..b", "text/plain", "a%0Ab", "x", []byte{0xff})
	f.Add("1.0", "a%FFb", "/s", "a", "application/json", "%ED%A0%80", "", []byte(`{"k":"\udbff"}`))
	f.Add("1.0", "\xff", "/\xc3", "a", "application/json", "", "", []byte("{\"k\":\"\x80\"}"))
	f.Fuzz(func(t *testing.T, spec, id, source, typ, ct, subject, ts string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{"Ce-Specversion": spec, "Ce-Id": id, "Ce-Source": source, "Ce-Type": typ,
			"Content-Type": ct, "Ce-Subject": subject, "Ce-Time": ts} {
			h.Set(k, v)
		}
		ev, err := event.ParseHTTPBinary(h, body, 0)
		if err == nil {
			if verr := ev.Validate(); verr != nil {
				t.Fatalf("accepted an event that does not validate: %v", verr)
			}
		}
	})
}
