//go:build unix

package core

import (
	"time"

	"golang.org/x/sys/unix"
)

// pollFDs waits in poll(2), on the calling thread, until one of fds is
// readable or d passes. A thread that blocks in the kernel is woken by the
// kernel: no goroutine hand-off to the locked thread of a C caller, which
// costs two context switches more. EINTR: the caller looks and comes back.
func pollFDs(fds []int, d time.Duration) {
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	ms := int((d + time.Millisecond - 1) / time.Millisecond)
	_, _ = unix.Poll(pfds, ms)
}
