package core

import (
	"net"
	"syscall"
)

// noSigPipe on macOS, which has no MSG_NOSIGNAL: SO_NOSIGPIPE on the
// socket, so that a write on a socket the peer reset fails with EPIPE
// instead of raising SIGPIPE in a host that reset its handler (see
// sigpipeSafeConn on Linux). Untested: the library is built for Linux.
func noSigPipe(c net.Conn) (net.Conn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	raw, err := sc.SyscallConn()
	if err == nil {
		ctlErr := raw.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_NOSIGPIPE, 1)
		})
		if err == nil {
			err = ctlErr
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// spillerOf: no non-blocking writes on macOS yet; writeNoWait blocks.
func spillerOf(net.Conn) spiller { return nil }

// fastSocketOf: no fast path on macOS yet; the reader goroutine reads.
func fastSocketOf(net.Conn) fastSocket { return nil }
