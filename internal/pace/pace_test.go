package pace

import (
	"context"
	"testing"
	"time"
)

// TestPacerSpacesWork checks the spacing (not a timing bound): 11 waits at 100/s cannot
// finish in under 100ms, whatever the machine.
func TestPacerSpacesWork(t *testing.T) {
	p := New(100)
	began := time.Now()
	for range 11 {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(began); d < 100*time.Millisecond {
		t.Errorf("11 waits at 100/s took %v, less than the 100ms they must span", d)
	}
}

func TestUnpacedAndCancelled(t *testing.T) {
	if err := New(0).Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := New(0.001)
	_ = p.Wait(context.Background()) // the first is free
	if err := p.Wait(ctx); err == nil {
		t.Error("a wait on an ended context returned nil")
	}
}
