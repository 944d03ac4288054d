package core

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// sigpipeSafeConn writes with send(2) and MSG_NOSIGNAL instead of write(2).
// A host process (CPython) may reset SIGPIPE to SIG_DFL after loading the
// library; a plain write on a socket the peer reset would then kill it.
// With MSG_NOSIGNAL the write fails with EPIPE and nothing else happens.
//
// It can also write without waiting (see spiller): what the kernel does not
// take at once is kept and drained later, so an event loop's send never
// waits for a server that stopped reading. It sits under TLS, so both
// ws:// and wss:// get it.
type sigpipeSafeConn struct {
	net.Conn
	raw syscall.RawConn

	// mu orders every write to the socket: the WebSocket writes, the drain
	// of a spill, and what TLS writes on its own (close_notify, a KeyUpdate
	// answer from the reader), so bytes never interleave and the spill is
	// never touched by two goroutines.
	mu     sync.Mutex
	noWait bool
	spill  []byte
}

func noSigPipe(c net.Conn) (net.Conn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &sigpipeSafeConn{Conn: c, raw: raw}, nil
}

// spillerOf returns c's non-blocking writer, nil if it has none.
func spillerOf(c net.Conn) spiller {
	if sc, ok := c.(*sigpipeSafeConn); ok {
		return sc
	}
	return nil
}

func (c *sigpipeSafeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.noWait {
		return c.writeNoWait(p), nil
	}
	if err := c.drainLocked(); err != nil {
		return 0, err
	}
	return c.send(p, true)
}

// writeNoWait sends what the kernel takes now and spills the rest; it
// claims the whole of p, which the drain will write.
// A failed send spills too: the drain meets the error again and the
// connection dies there (bytes on the wire cannot be taken back).
func (c *sigpipeSafeConn) writeNoWait(p []byte) int {
	rest := p
	if len(c.spill) == 0 {
		n, _ := c.send(p, false)
		rest = p[n:]
	}
	c.spill = append(c.spill, rest...)
	return len(p)
}

func (c *sigpipeSafeConn) spilling(on bool) {
	c.mu.Lock()
	c.noWait = on
	c.mu.Unlock()
}

func (c *sigpipeSafeConn) spilled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spill) > 0
}

// drain writes the spilled bytes, waiting for the socket (and its write
// deadline); closing the socket ends the wait.
func (c *sigpipeSafeConn) drain() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drainLocked()
}

func (c *sigpipeSafeConn) drainLocked() error {
	if len(c.spill) == 0 {
		return nil
	}
	_, err := c.send(c.spill, true)
	c.spill = nil
	return err
}

// send writes p with MSG_NOSIGNAL; without wait it stops at the first
// EAGAIN and reports how much went out.
func (c *sigpipeSafeConn) send(p []byte, wait bool) (int, error) {
	n := 0
	var sendErr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.SendmsgN(int(fd), p[n:], nil, nil, syscall.MSG_NOSIGNAL)
			switch e {
			case nil:
				n += m
			case syscall.EINTR:
			case syscall.EAGAIN:
				return !wait // false: wait until writable, honouring the write deadline
			default:
				sendErr = os.NewSyscallError("sendmsg", e)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}
