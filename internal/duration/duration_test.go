package duration_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/duration"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"7d", 7 * 24 * time.Hour, false},
		{"0d", 0, false},
		{"90s", 90 * time.Second, false},
		{"1h30m", 90 * time.Minute, false},
		{" 2m ", 2 * time.Minute, false},
		{"1.5d", 0, true},
		{"-1d", 0, true},
		{"week", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := duration.Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestJSON(t *testing.T) {
	var v struct{ A, B duration.Duration }
	if err := json.Unmarshal([]byte(`{"A":"2m","B":1.5}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.Std() != 2*time.Minute || v.B.Std() != 1500*time.Millisecond {
		t.Errorf("%v %v", v.A, v.B)
	}
	if err := json.Unmarshal([]byte(`{"A":true}`), &v); err == nil {
		t.Error("a boolean was accepted as a duration")
	}
}
