// Package clip shortens text for messages, headers and terminal lines without splitting a
// UTF-8 character.
package clip

import "unicode/utf8"

// String returns s cut to at most n bytes at a character boundary, with "…" appended when
// anything was cut.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
