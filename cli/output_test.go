package cli

import (
	"runtime/debug"
	"testing"
)

// TestTerminalSafe: what an attacker puts in an event or a rejected body cannot drive the
// operator's terminal (dlq show used to print a body's escape sequences as they were).
func TestTerminalSafe(t *testing.T) {
	tests := []struct {
		in           string
		keepNewlines bool
		want         string
	}{
		{"plain text, é and 中", false, "plain text, é and 中"},
		{"\x1b]0;pwned\x07\x1b[2J", false, `\u001b]0;pwned\u0007\u001b[2J`},
		{"csi \u009b31m", false, `csi \u009b31m`},
		{"a\nb\tc", true, "a\nb\tc"},
		{"a\nb", false, `a\u000ab`},
		{"bad \xff byte", false, `bad \xff byte`},
		{"rtl \u202eoverride", false, `rtl \u202eoverride`},
		{"del \x7f", true, `del \u007f`},
	}
	for _, tt := range tests {
		if got := terminalSafe(tt.in, tt.keepNewlines); got != tt.want {
			t.Errorf("terminalSafe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestVersionFromBuildInfo: a plain go build says which commit it is, not "dev".
func TestVersionFromBuildInfo(t *testing.T) {
	tests := []struct {
		info debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "f8adb0a1234567890"}, {Key: "vcs.time", Value: "2026-12-04T18:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"devel-f8adb0a12345+dirty (2026-12-04T18:00:00Z)"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
	}
	for _, tt := range tests {
		if got := versionOf(&tt.info); got != tt.want {
			t.Errorf("versionOf(%+v) = %q, want %q", tt.info, got, tt.want)
		}
	}
}
