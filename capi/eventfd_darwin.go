package main

import (
	"sync"
	"syscall"
)

// eventFD on macOS, which has no eventfd: a non-blocking pipe whose read
// end (fd) is the level signal -- readable exactly while the handle has
// events waiting, for kqueue (asyncio's add_reader) or poll. Set writes
// one byte unless the pipe holds one; Clear reads it back. The macOS
// build is untested (see "Platforms" in the README).
type eventFD struct {
	fd  int // the read end, given to the caller
	w   int // the write end
	mu  sync.Mutex
	set bool // the pipe holds a byte
}

func newEventFD() (*eventFD, error) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		return nil, err
	}
	for _, fd := range p {
		syscall.CloseOnExec(fd)
		if err := syscall.SetNonblock(fd, true); err != nil {
			_ = syscall.Close(p[0])
			_ = syscall.Close(p[1])
			return nil, err
		}
	}
	return &eventFD{fd: p[0], w: p[1]}, nil
}

// Set makes the fd readable. Called under the queue's lock.
func (e *eventFD) Set() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.set {
		_, _ = syscall.Write(e.w, []byte{1})
		e.set = true
	}
}

// Clear makes the fd unreadable again.
func (e *eventFD) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set {
		var b [1]byte
		_, _ = syscall.Read(e.fd, b[:])
		e.set = false
	}
}

func (e *eventFD) Close() error {
	_ = syscall.Close(e.w)
	return syscall.Close(e.fd)
}
