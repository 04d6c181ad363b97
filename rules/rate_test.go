package rules

import "testing"

func TestRate(t *testing.T) {
	for in, want := range map[string]float64{"": 0, "500/s": 500, "30000/m": 500, "60/min": 1, "7200/h": 2, "0.5/s": 0.5, " 10 / s ": 10} {
		got, err := Delivery{RateLimit: in}.Rate()
		if err != nil || got != want {
			t.Errorf("Rate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"500", "500/d", "0/s", "-1/s", "x/s", "NaN/s", "Inf/s"} {
		if _, err := (Delivery{RateLimit: bad}).Rate(); err == nil {
			t.Errorf("Rate(%q) accepted", bad)
		}
	}
}
