package main

import (
	"encoding/binary"
	"syscall"
)

// eventFD is a Linux eventfd used as a level signal: readable exactly while
// the handle has events waiting, so an event loop can wait on it with
// epoll (asyncio's add_reader) instead of a thread.
type eventFD struct{ fd int }

func newEventFD() (*eventFD, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return nil, errno
	}
	return &eventFD{fd: int(fd)}, nil
}

// Set makes the fd readable. Called under the queue's lock.
func (e *eventFD) Set() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = syscall.Write(e.fd, one[:]) // EAGAIN only if the counter is saturated: still readable
}

// Clear makes the fd unreadable again by draining its counter.
func (e *eventFD) Clear() {
	var b [8]byte
	_, _ = syscall.Read(e.fd, b[:]) // EAGAIN when already clear
}

func (e *eventFD) Close() error { return syscall.Close(e.fd) }
