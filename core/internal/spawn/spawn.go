// Package spawn is the one way steadyws starts goroutines. A panic in a
// goroutine without its own recover aborts the whole process -- the host
// interpreter included -- so every goroutine of the engine and the test
// server starts here, where a panic is recovered and handed to its owner,
// and where its owner can wait for it. A test in package core fails on any
// go statement outside this file.
package spawn

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Group is a set of goroutines that one owner waits for. The zero value is
// ready to use; OnPanic, if set, gets every recovered panic as an error.
type Group struct {
	// OnPanic is called with a recovered panic, on the goroutine that
	// panicked, before it returns. It must not panic itself.
	OnPanic func(error)

	mu      sync.Mutex
	wg      sync.WaitGroup
	closed  bool
	running atomic.Int64
}

// Go runs f on a new goroutine of the group. It returns false, and does not
// run f, once Close was called: nothing starts after its owner stopped
// waiting.
func (g *Group) Go(name string, f func()) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go g.run(name, f)
	return true
}

func (g *Group) run(name string, f func()) {
	g.running.Add(1)
	defer g.wg.Done()
	defer g.running.Add(-1)
	defer Recover(name, g.OnPanic)
	f()
}

// Running is the number of the group's goroutines that have not returned.
func (g *Group) Running() int { return int(g.running.Load()) }

// Close refuses new goroutines and waits for the running ones.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// Wait waits for the running goroutines without refusing new ones.
func (g *Group) Wait() { g.wg.Wait() }

// Go runs f on a goroutine that belongs to no group: for an owner's own
// supervisor goroutine, which is what waits for its group.
func Go(name string, onPanic func(error), f func()) {
	go func() {
		defer Recover(name, onPanic)
		f()
	}()
}

// PanicError is a recovered panic.
type PanicError struct {
	Name  string // the goroutine or call it happened in
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("recovered panic in %s: %v", e.Name, e.Value) }

// Recover is deferred by every goroutine: it turns a panic into a
// *PanicError for onPanic (which may be nil).
func Recover(name string, onPanic func(error)) {
	r := recover()
	if r == nil {
		return
	}
	if onPanic != nil {
		onPanic(&PanicError{Name: name, Value: r, Stack: debug.Stack()})
	}
}
