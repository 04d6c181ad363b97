package clip_test

import (
	"testing"
	"unicode/utf8"

	"github.com/jetmesh/jetmesh/internal/clip"
)

func TestString(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc…"},
		{"café!", 4, "caf…"}, // byte 4 is inside é: cut before it
		{"日本語", 4, "日…"},
		{"日本語", 0, "…"},
	}
	for _, tt := range tests {
		got := clip.String(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("String(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
