package lastminute

import (
	"testing"
	"time"
)

func TestWindowKeepsAMinute(t *testing.T) {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	w := New(start, 0)
	if base, at := w.Add(start.Add(5*time.Second), 5); base != 0 || !at.Equal(start) {
		t.Fatalf("early: %d %v", base, at)
	}
	for s := 10; s <= 120; s += 5 {
		w.Add(start.Add(time.Duration(s)*time.Second), s)
	}
	base, at := w.Add(start.Add(125*time.Second), 125)
	if age := start.Add(125 * time.Second).Sub(at); age < time.Minute || age >= time.Minute+5*time.Second || base != int(at.Sub(start).Seconds()) {
		t.Errorf("base %d from %v ago, want the newest sample at least a minute old", base, age)
	}
}
