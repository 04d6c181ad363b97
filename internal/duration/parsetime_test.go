package duration

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2h":                          now.Add(-2 * time.Hour),
		"7d":                          now.Add(-7 * 24 * time.Hour),
		"90s":                         now.Add(-90 * time.Second),
		"2026-12-01T08:00:00Z":        time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC),
		"2026-12-01T09:00:00.5+01:00": time.Date(2026, 12, 1, 8, 0, 0, 5e8, time.UTC),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-2h", "2026-12-01", "1x"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}
