package console

import (
	"strings"
	"testing"
)

func TestLineDiff(t *testing.T) {
	var got []string
	for _, l := range lineDiff("a\nb\nc\nd", "a\nc\nd\ne") {
		got = append(got, l.Op+l.Text)
	}
	if want := " a,-b, c, d,+e"; strings.Join(got, ",") != want {
		t.Errorf("diff %q, want %q", strings.Join(got, ","), want)
	}
}
