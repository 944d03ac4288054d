package main

import (
	"errors"
	"sync"

	"github.com/steadyws/steadyws/core"
	"github.com/steadyws/steadyws/core/testserver"
)

// kind is what a handle stands for.
type kind int

const (
	kindClient kind = iota
	kindServer
	kindHub
	kindRateLimit
)

var kindNames = [...]string{"a connection", "a test server", "a hub", "a rate limit"}

// entry is what a handle stands for: a client, a test server or a hub.
type entry struct {
	kind   kind
	client *core.Client
	server *testserver.Server
	hub    *core.Hub
	limit  *core.RateLimit
	held   *testserver.Message // a received message too big for the last buffer

	mu      sync.Mutex
	freed   bool
	wakeup  *eventFD     // created on first sws_wakeup_fd / sws_hub_wakeup_fd
	scratch []core.Event // reused by polls; pollMu serializes its use
	src     []uint32     // the hub's member ids of the scratch events
	pollMu  sync.Mutex
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

// wakeupFD returns the entry's eventfd, made on first use and given to
// install; after free it fails, so it can never race the close.
func (e *entry) wakeupFD(install func(core.Signal)) (int32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.freed {
		return 0, errBadHandle
	}
	if e.wakeup == nil {
		fd, err := newEventFD()
		if err != nil {
			return 0, &core.Error{Code: core.CodeInternal, Op: "eventfd", Err: err}
		}
		e.wakeup = fd
		install(fd)
	}
	return int32(e.wakeup.fd), nil
}

// closeWakeup closes the eventfd once the entry is freed.
func (e *entry) closeWakeup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.freed = true
	if e.wakeup != nil {
		_ = e.wakeup.Close()
		e.wakeup = nil
	}
}

// events returns the entry's scratch space for n events; pollMu must be held.
func (e *entry) events(n int) ([]core.Event, []uint32) {
	if cap(e.scratch) < n {
		e.scratch, e.src = make([]core.Event, n), make([]uint32, n)
	}
	return e.scratch[:n], e.src[:n]
}

// handles is the table of live handles. Handles are never reused, so a
// stale handle fails with CodeBadHandle instead of reaching another
// connection.
var handles = struct {
	sync.Mutex
	next int64
	m    map[int64]*entry
}{next: 1, m: map[int64]*entry{}}

var errBadHandle = &core.Error{Code: core.CodeBadHandle, Op: "handle", Err: errors.New("unknown, freed or invalid handle")}

func register(e *entry) int64 {
	handles.Lock()
	defer handles.Unlock()
	h := handles.next
	handles.next++
	handles.m[h] = e
	return h
}

// lookup is the one place a handle becomes an entry of kind k.
func lookup(h int64, k kind) (*entry, error) {
	handles.Lock()
	e, ok := handles.m[h]
	handles.Unlock()
	switch {
	case !ok:
		return nil, errBadHandle
	case e.kind != k:
		return nil, &core.Error{Code: core.CodeBadHandle, Op: "handle", Err: errors.New("the handle is " + kindNames[e.kind] + ", not " + kindNames[k])}
	}
	return e, nil
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
