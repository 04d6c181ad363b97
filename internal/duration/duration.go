// Package duration is a time.Duration that config files can spell the way operators do:
// Go syntax ("90s", "1h30m") plus whole days ("7d", "14d").
package duration

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration marshals as a string like "168h0m0s" and unmarshals from Go duration syntax, a
// day count such as "7d", or a bare number of seconds.
type Duration time.Duration

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Parse reads Go duration syntax or a whole number of days with a "d" suffix.
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q: want a whole number of days like 7d, or Go syntax like 36h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want Go syntax like 30s, 2m, 36h, or days like 7d", s)
	}
	return v, nil
}

// UnmarshalText implements encoding.TextUnmarshaler, used by YAML and flags.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalJSON accepts a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"30s\" or a number of seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Set and Type make Duration a pflag.Value, so flags accept "7d" too.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// Type names the flag value kind in --help.
func (d *Duration) Type() string { return "duration" }

// ParseTime reads a point in time the way operators give one on the command line: an RFC
// 3339 time ("2026-12-04T10:00:00Z") or a duration ago ("2h", "7d", "90m").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := Parse(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("invalid time %q: want an RFC 3339 time like 2026-12-04T10:00:00Z or a duration ago like 2h or 7d", s)
	}
	return now.Add(-d), nil
}
