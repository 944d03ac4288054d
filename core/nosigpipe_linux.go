package core

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

	// readMode is how Read reads (readWaiting, readProbe, readConsumer),
	// set by the holder of the connection's reading turn (turn.go);
	// ownFD is the consumer's own descriptor of the socket, -1 until the
	// first consumer read.
	readMode atomic.Int32
	ownFD    int
	drained  bool        // the consumer's last read was short (see Read)
	shared   atomic.Bool // a descriptor of the socket was handed out (dup)
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
	return &sigpipeSafeConn{Conn: c, raw: raw, ownFD: -1}, nil
}

// spillerOf returns c's non-blocking writer, nil if it has none.
func spillerOf(c net.Conn) spiller {
	if sc, ok := c.(*sigpipeSafeConn); ok {
		return sc
	}
	return nil
}

// fastSocketOf returns c's fast-path reads, nil if it has none.
func fastSocketOf(c net.Conn) fastSocket {
	if sc, ok := c.(*sigpipeSafeConn); ok {
		return sc
	}
	return nil
}

// errWouldBlock is a read that would have waited: a timeout, so that TLS
// and bufio take it as the temporary error it is.
var errWouldBlock = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

func (c *sigpipeSafeConn) Read(p []byte) (int, error) {
	switch c.readMode.Load() {
	case readProbe:
		return c.readNow(p)
	case readConsumer:
		// A short read took what the socket had: the next would find
		// nothing but EAGAIN, so it is not made. (The consumer's wait is
		// level-triggered: whatever arrives meanwhile ends it at once.)
		if c.drained {
			return 0, errWouldBlock
		}
		n, err := readFD(c.ownFD, p)
		c.drained = err == nil && n < len(p)
		return n, err
	}
	return c.Conn.Read(p)
}

// readNow reads what the socket has, without waiting.
func (c *sigpipeSafeConn) readNow(p []byte) (n int, err error) {
	rawErr := c.raw.Read(func(fd uintptr) bool {
		n, err = readFD(int(fd), p)
		return true
	})
	if rawErr != nil {
		return 0, rawErr
	}
	return n, err
}

// readFD reads a non-blocking descriptor once.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, e := syscall.Read(fd, p)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return 0, errWouldBlock
		case e != nil:
			return 0, os.NewSyscallError("read", e)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *sigpipeSafeConn) setReadMode(mode int32) error {
	if mode == readConsumer {
		if _, err := c.consumerFD(); err != nil {
			return err
		}
	}
	c.drained = false
	c.readMode.Store(mode)
	return nil
}

// consumerFD is the consumer's descriptor of the socket, made on first
// use; only the holder of the turn calls it.
func (c *sigpipeSafeConn) consumerFD() (int, error) {
	if c.ownFD < 0 {
		fd, err := c.dup()
		if err != nil {
			return -1, err
		}
		c.ownFD = fd
	}
	return c.ownFD, nil
}

// closeConsumerFD closes the consumer's descriptor, once no consumer can
// read any more (the turn is closed).
func (c *sigpipeSafeConn) closeConsumerFD() {
	if c.ownFD >= 0 {
		_ = syscall.Close(c.ownFD)
		c.ownFD = -1
	}
}

// waitReadable waits until the socket has something to read -- bytes, the
// end of the stream or an error -- reading nothing: poll(2) tells without
// taking a pending error from the socket (a peeking recv would, and the
// read after it would see a plain EOF where the peer reset). It holds the
// socket's read lock, so a consumer reads through its own descriptor
// meanwhile; kick ends the wait early.
func (c *sigpipeSafeConn) waitReadable() error {
	return c.raw.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return (n > 0 && fds[0].Revents != 0) || (err != nil && err != unix.EINTR)
	})
}

// readable reports whether the socket has something to read, now.
func (c *sigpipeSafeConn) readable() bool {
	ready := false
	_ = c.raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		ready = n > 0
	})
	return ready
}

func (c *sigpipeSafeConn) kick()   { _ = c.Conn.SetReadDeadline(time.Unix(1, 0)) }
func (c *sigpipeSafeConn) unkick() { _ = c.Conn.SetReadDeadline(time.Time{}) }

// dup returns a new descriptor of the socket, for a consumer to wait on.
func (c *sigpipeSafeConn) dup() (int, error) {
	fd := -1
	var dupErr error
	c.shared.Store(true)
	err := c.raw.Control(func(s uintptr) {
		fd, dupErr = syscall.Dup(int(s))
		if dupErr == nil {
			syscall.CloseOnExec(fd)
		}
	})
	if err == nil {
		err = dupErr
	}
	return fd, err
}

// Close shuts the connection down before closing the descriptor: once
// descriptors of it are out (dup), closing one would not end it, and those
// waiting on them would not hear of the end.
func (c *sigpipeSafeConn) Close() error {
	if c.shared.Load() {
		_ = c.raw.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
	return c.Conn.Close()
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
