// Package jsonx holds the two JSON helpers the schema and rule packages share: decoding one
// value with exact numbers, and escaping JSON pointer tokens.
package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Decode decodes exactly one JSON value, numbers as json.Number so nothing is rounded.
// Anything after the value is an error.
func Decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// Escape escapes one JSON pointer token (RFC 6901): ~ → ~0, / → ~1.
func Escape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}
