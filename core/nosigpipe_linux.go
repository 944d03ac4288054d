package core

import (
	"net"
	"os"
	"syscall"
)

// sigpipeSafeConn writes with send(2) and MSG_NOSIGNAL instead of write(2).
// A host process (CPython) may reset SIGPIPE to SIG_DFL after loading the
// library; a plain write on a socket the peer reset would then kill it.
// With MSG_NOSIGNAL the write fails with EPIPE and nothing else happens.
type sigpipeSafeConn struct {
	net.Conn
	raw syscall.RawConn
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

func (c *sigpipeSafeConn) Write(p []byte) (int, error) {
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
				return false // wait until writable, honouring the write deadline
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
