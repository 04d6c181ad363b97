package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
)

// Draft is an event as a client assembles it, attribute by attribute, before any rule is
// applied. Its structured form keeps every attribute exactly as given, in order, duplicates
// and bad names included, so the ingress judges a CLI's event by the very rules (and code)
// it applies to any HTTP publisher: a client never repairs, lower-cases or drops anything.
type Draft struct {
	attrs []draftAttr
	data  []byte
}

type draftAttr struct{ name, value string }

// Set appends an attribute; an empty value is left out (CloudEvents: absent).
func (d *Draft) Set(name, value string) {
	if value != "" {
		d.attrs = append(d.attrs, draftAttr{name, value})
	}
}

// SetData sets the payload, in the content type the datacontenttype attribute names.
func (d *Draft) SetData(data []byte) { d.data = data }

// MarshalJSON renders the draft as one structured event. Attribute strings keep their bytes
// (only quotes, backslashes and control characters are escaped), so text that is not
// UTF-8 reaches the ingress as such instead of being turned into U+FFFD here. Data is
// inline when it is JSON text and the content type says JSON; otherwise it travels as
// data_base64, byte for byte, and the ingress decides whether it fits the content type.
func (d *Draft) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(d.data) + 256)
	contentType := DefaultContentType
	b.WriteByte('{')
	for i, a := range d.attrs {
		if i > 0 {
			b.WriteByte(',')
		}
		writeRawString(&b, a.name)
		b.WriteByte(':')
		writeRawString(&b, a.value)
		if a.name == "datacontenttype" {
			contentType = a.value
		}
	}
	if len(d.data) > 0 {
		if len(d.attrs) > 0 {
			b.WriteByte(',')
		}
		if IsJSON(contentType) && json.Valid(d.data) {
			b.WriteString(`"data":`)
			b.Write(d.data)
		} else {
			b.WriteString(`"data_base64":"`)
			b.WriteString(base64.StdEncoding.EncodeToString(d.data))
			b.WriteByte('"')
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeRawString writes s as a JSON string literal without touching bytes that are not
// UTF-8 (encoding/json would replace them).
func writeRawString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
