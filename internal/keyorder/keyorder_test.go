package keyorder

import "testing"

func TestChecker(t *testing.T) {
	c := New()
	for _, e := range []struct {
		key string
		n   int
	}{{"a", 1}, {"b", 1}, {"a", 2}, {"a", 1}, {"b", 3}, {"b", 2}, {"a", 3}} {
		c.Observe(e.key, e.n)
	}
	// a: 1 2 (1 again: a repeat) 3; b: 1 3 2 (2 first seen after 3: a violation).
	if d, r, v := c.Counts(); d != 6 || r != 1 || v != 1 {
		t.Fatalf("distinct %d, repeats %d, violations %d; want 6, 1, 1", d, r, v)
	}
}
