package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// referenceParseStructured is the straightforward encoding/json implementation that
// ParseStructured replaced for speed. The differential fuzz target below holds the fast
// parser to it.
func referenceParseStructured(raw []byte, maxBytes int) (*Event, error) {
	if limit := limitOrDefault(maxBytes); len(raw) > limit {
		return nil, tooLarge(len(raw), limit)
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil {
		return nil, malformed("not a JSON object: %v", err)
	}
	if attrs == nil {
		return nil, malformed("not a JSON object: got null")
	}
	if !referenceText(raw) {
		return nil, invalid("", RuleText, "not Unicode text")
	}
	if name, dup := referenceDuplicate(raw); dup {
		return nil, invalid(name, RuleDuplicate, "twice")
	}
	e := &Event{}
	for name, value := range attrs {
		if name == "data" || name == "data_base64" || isNull(value) {
			continue
		}
		s, err := attrString(name, value)
		if err != nil {
			return nil, err
		}
		lit, _ := json.Marshal(s)
		if err := e.setAttr(name, lit, true); err != nil {
			return nil, err
		}
	}
	if err := e.setStructuredData(attrs["data"], attrs["data_base64"]); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// referenceText reports whether raw, a valid JSON text, is also Unicode text: valid UTF-8,
// and every \u escape of a surrogate half part of a high-low pair.
func referenceText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	hex := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[:4]), 16, 32)
		return rune(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // raw is valid JSON: a backslash is always followed by its escaped character
		if raw[i] != 'u' {
			continue
		}
		r, _ := hex(raw[i+1:])
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r >= 0xdc00:
			return false
		case utf16.IsSurrogate(r):
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			low, ok := hex(raw[i+3:])
			if !ok || !utf16.IsSurrogate(low) || low < 0xdc00 {
				return false
			}
			i += 6
		}
	}
	return true
}

// referenceDuplicate finds a key that appears twice in the top-level object of raw.
func referenceDuplicate(raw []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		key := tok.(string)
		if seen[key] {
			return key, true
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

func kindOf(err error) error {
	for _, k := range []error{ErrMalformed, ErrInvalid, ErrTooLarge} {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

// FuzzParseStructuredMatchesReference: the fast parser accepts exactly what encoding/json
// based parsing accepts, produces the same event, and classifies refusals the same way.
// (Which of several bad attributes is named may differ: the reference walks a map.)
func FuzzParseStructuredMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"specversion":"1.0","id":"1","source":"/s","type":"a","data":{"x":[1,2.5e3,"\u00e9"]}}`,
		`{"specversion":"1.0","id":"\u0041\n","source":"/s","type":"a"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"a","ext":5,"b":true,"data":null}`,
		`{"specversion":"1.0","id":"\udbffx","source":"/s","type":"a"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"a","data":{"k":"\udc00"}}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"a","\u0069d":"2"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"a","data":1,"data":2}`,
		"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"a\",\"data\":\"\xff\",}",
		`{"specversion":"1.0","id":"1","id":"2","source":"/s","type":"a","datacontenttype":"text/plain","data":"hi"}`,
		"{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"/s\",\"type\":\"a\"}",
		` [1] `, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `"x"`, `-0.1e+5`, `{}x`, `{"a":[{"b":[]}]}`, `nul`, `{"\ud800":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := ParseStructured(raw, 0)
		want, wantErr := referenceParseStructured(raw, 0)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("fast: %v\nreference: %v\ninput %q", gotErr, wantErr, raw)
		}
		if gotErr != nil {
			if kindOf(gotErr) != kindOf(wantErr) {
				t.Fatalf("fast refused as %v, reference as %v\ninput %q", gotErr, wantErr, raw)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("events differ for %q\nfast %+v\nref  %+v", raw, got, want)
		}
	})
}

// FuzzParseBatchMatchesReference: the fast batch splitter agrees with encoding/json.
func FuzzParseBatchMatchesReference(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a",{"b":[null]}]`, "[\"\xff\", 2]", `["\ud800"]`, `[1,]`, `[`, `{}`, ` [ 1 , 2 ] `, `[1] [2]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := ParseBatch(raw)
		var want []json.RawMessage
		wantErr := json.Unmarshal(raw, &want)
		if wantErr == nil && want == nil {
			wantErr = errors.New("null")
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("fast: %v, reference: %v, input %q", gotErr, wantErr, raw)
		}
		if gotErr == nil && len(got) != len(want) {
			t.Fatalf("%d entries, reference %d, input %q", len(got), len(want), raw)
		}
		for k := range got {
			if string(got[k]) != string(want[k]) {
				t.Fatalf("entry %d = %q, reference %q", k, got[k], want[k])
			}
		}
	})
}

// FuzzValidJSONMatchesStdlib: the scanner's validator agrees with encoding/json.Valid on
// syntax, and refuses what is not Unicode text, which encoding/json lets through.
func FuzzValidJSONMatchesStdlib(f *testing.F) {
	for _, s := range []string{`{}`, `[1,2]`, `"\u00zz"`, `01`, `-`, `1e`, `1.`, ` true `, `nulll`, "\"\x01\"", `{"a":[1,{"b":null}]}`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, "\"\xed\xa0\x80\"", `"\\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := validJSON(raw) == nil, json.Valid(raw) && referenceText(raw); got != want {
			t.Fatalf("validJSON = %v, json.Valid = %v for %q", got, want, raw)
		}
	})
}
