package spawn

import (
	"errors"
	"testing"
)

// TestPanicsAreRecoveredAndReported: a panicking goroutine of a group does
// not crash the process; its owner hears of it, and Close still returns.
func TestPanicsAreRecoveredAndReported(t *testing.T) {
	got := make(chan error, 1)
	g := Group{OnPanic: func(err error) { got <- err }}
	g.Go("boom", func() { panic("boom") })
	g.Close()
	var pe *PanicError
	if err := <-got; !errors.As(err, &pe) || pe.Name != "boom" || pe.Value != "boom" || len(pe.Stack) == 0 {
		t.Fatalf("got %v", err)
	}
	if g.Running() != 0 {
		t.Fatal("a goroutine is still counted")
	}
}

// TestNothingStartsAfterClose: once the owner stopped waiting, Go refuses.
func TestNothingStartsAfterClose(t *testing.T) {
	var g Group
	g.Close()
	if g.Go("late", func() { t.Error("ran after Close") }) {
		t.Fatal("Go accepted after Close")
	}
}

// TestSupervisorPanics: a goroutine outside any group recovers too.
func TestSupervisorPanics(t *testing.T) {
	got := make(chan error, 1)
	Go("supervisor", func(err error) { got <- err }, func() { panic(42) })
	if err := <-got; err == nil {
		t.Fatal("no error")
	}
}
