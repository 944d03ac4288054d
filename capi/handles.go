package main

import (
	"errors"
	"sync"

	"github.com/steadyws/steadyws/core"
	"github.com/steadyws/steadyws/core/testserver"
)

// entry is what a handle stands for: a client or a test server.
type entry struct {
	client *core.Client
	server *testserver.Server
	held   *testserver.Message // a received message too big for the last buffer

	mu      sync.Mutex
	lastErr string
	wakeup  *eventFD     // created on first sws_wakeup_fd
	scratch []core.Event // reused by sws_poll; pollMu serializes its use
	pollMu  sync.Mutex
}

func (e *entry) setLastError(msg string) {
	e.mu.Lock()
	e.lastErr = msg
	e.mu.Unlock()
}

// hold keeps a received message for the next sws_server_recv.
func (e *entry) hold(m testserver.Message) {
	e.mu.Lock()
	e.held = &m
	e.mu.Unlock()
}

func (e *entry) takeHeld() (testserver.Message, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.held == nil {
		return testserver.Message{}, false
	}
	m := *e.held
	e.held = nil
	return m, true
}

func (e *entry) lastError() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

// handles is the table of live handles. Handles are never reused, so a
// stale handle fails with CodeBadHandle instead of reaching another
// connection.
var handles = struct {
	sync.Mutex
	next int64
	m    map[int64]*entry
}{next: 1, m: map[int64]*entry{}}

// globalErr holds the last error of a call that had no valid handle.
var globalErr = struct {
	sync.Mutex
	msg string
}{}

var errBadHandle = &core.Error{Code: core.CodeBadHandle, Op: "handle", Err: errors.New("unknown, freed or invalid handle")}

func register(e *entry) int64 {
	handles.Lock()
	defer handles.Unlock()
	h := handles.next
	handles.next++
	handles.m[h] = e
	return h
}

// lookup is the one place a handle becomes an entry.
func lookup(h int64) (*entry, error) {
	handles.Lock()
	defer handles.Unlock()
	if e, ok := handles.m[h]; ok {
		return e, nil
	}
	return nil, errBadHandle
}

// unregister removes h; later lookups fail.
func unregister(h int64) (*entry, error) {
	handles.Lock()
	defer handles.Unlock()
	e, ok := handles.m[h]
	if !ok {
		return nil, errBadHandle
	}
	delete(handles.m, h)
	return e, nil
}

func liveHandles() int {
	handles.Lock()
	defer handles.Unlock()
	return len(handles.m)
}

// recordError keeps err's message for sws_last_error: on the handle's entry
// if it exists, else globally.
func recordError(h int64, err error) {
	if e, lerr := lookup(h); lerr == nil {
		e.setLastError(err.Error())
		return
	}
	globalErr.Lock()
	globalErr.msg = err.Error()
	globalErr.Unlock()
}
