package event

import (
	"fmt"
	"unicode/utf8"
)

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

// syntaxError is a JSON syntax problem at a byte offset. text marks a string that is not
// valid Unicode text (invalid UTF-8, or an escaped lone surrogate): well-formed JSON
// otherwise, but RFC 8259 text must be Unicode, and decoders disagree on what to make of
// it (encoding/json turns it into U+FFFD, so two different ids would become one).
type syntaxError struct {
	msg  string
	off  int
	text bool
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

// validJSON checks that b is exactly one JSON value (RFC 8259), surrounded by optional white
// space. It allocates nothing on valid input.
func validJSON(b []byte) *syntaxError {
	i := skipWS(b, 0)
	i, err := scanValue(b, i, 0)
	if err != nil {
		return err
	}
	if i = skipWS(b, i); i != len(b) {
		return &syntaxError{fmt.Sprintf("invalid character %q after top-level value", b[i]), i, false}
	}
	return nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func unexpected(b []byte, i int, what string) *syntaxError {
	if i >= len(b) {
		return &syntaxError{"unexpected end of JSON input", i, false}
	}
	return &syntaxError{fmt.Sprintf("invalid character %q %s", b[i], what), i, false}
}

// scanValue validates the value starting at b[i] and returns the offset after it.
func scanValue(b []byte, i, depth int) (int, *syntaxError) {
	if i >= len(b) {
		return i, unexpected(b, i, "")
	}
	switch c := b[i]; {
	case c == '{':
		return scanObject(b, i, depth+1)
	case c == '[':
		return scanArray(b, i, depth+1)
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return i, unexpected(b, i, "looking for beginning of value")
}

func scanObject(b []byte, i, depth int) (int, *syntaxError) {
	if depth > maxDepth {
		return i, &syntaxError{"exceeded max depth", i, false}
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, unexpected(b, i, "looking for beginning of object key string")
		}
		var err *syntaxError
		if i, _, err = scanString(b, i); err != nil {
			return i, err
		}
		if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
			return i, unexpected(b, i, "after object key")
		}
		if i, err = scanValue(b, skipWS(b, i+1), depth); err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		if i >= len(b) || b[i] != ',' {
			return i, unexpected(b, i, "after object key:value pair")
		}
		i = skipWS(b, i+1)
	}
}

func scanArray(b []byte, i, depth int) (int, *syntaxError) {
	if depth > maxDepth {
		return i, &syntaxError{"exceeded max depth", i, false}
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err *syntaxError
		if i, err = scanValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		if i >= len(b) || b[i] != ',' {
			return i, unexpected(b, i, "after array element")
		}
		i = skipWS(b, i+1)
	}
}

// scanString validates the string starting at the quote b[i] and returns the offset after
// its closing quote, and whether it holds escapes (so its value must be decoded rather
// than sliced). Bytes that are not UTF-8 and \u escapes of lone surrogates are refused.
func scanString(b []byte, i int) (int, bool, *syntaxError) {
	slow := false
	for i++; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, slow, nil
		case c == '\\':
			slow = true
			if i+1 >= len(b) {
				return i + 1, slow, unexpected(b, i+1, "")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, err := hexRune(b, i)
				if err != nil {
					return i, slow, err
				}
				switch {
				case r >= 0xdc00 && r <= 0xdfff:
					return i, slow, loneSurrogate(r, i)
				case r >= 0xd800 && r <= 0xdbff:
					if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
						if low, err := hexRune(b, i+6); err == nil && low >= 0xdc00 && low <= 0xdfff {
							i += 12
							continue
						}
					}
					return i, slow, loneSurrogate(r, i)
				}
				i += 6
			default:
				return i + 1, slow, unexpected(b, i+1, "in string escape code")
			}
		case c < 0x20:
			return i, slow, unexpected(b, i, "in string literal")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, slow, &syntaxError{fmt.Sprintf("byte 0x%02x is not valid UTF-8", c), i, true}
			}
			i += size
		}
	}
	return i, slow, unexpected(b, i, "")
}

// hexRune reads the four hex digits of the \u escape at b[i].
func hexRune(b []byte, i int) (rune, *syntaxError) {
	var r rune
	for k := 2; k < 6; k++ {
		if i+k >= len(b) {
			return 0, unexpected(b, i+k, "")
		}
		c := b[i+k]
		if !isHex(c) {
			return 0, unexpected(b, i+k, "in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(hexVal(c))
	}
	return r, nil
}

func loneSurrogate(r rune, off int) *syntaxError {
	return &syntaxError{fmt.Sprintf("\\u%04x is a lone UTF-16 surrogate, not a character", r), off, true}
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func scanNumber(b []byte, i int) (int, *syntaxError) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, unexpected(b, i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, unexpected(b, i, "after decimal point in numeric literal")
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, unexpected(b, i, "in exponent of numeric literal")
		}
		i = digits(b, i)
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func scanLiteral(b []byte, i int, lit string) (int, *syntaxError) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, unexpected(b, i+k, "in literal "+lit+" (expecting '"+lit[k:k+1]+"')")
		}
	}
	return i + len(lit), nil
}
