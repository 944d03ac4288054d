package core

import (
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// resetPair returns the client end of a TCP connection whose server end
// was reset (RST) and whose reset the client's kernel has already seen.
func resetPair(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = s.(*net.TCPConn).SetLinger(0)
	s.Close()
	time.Sleep(50 * time.Millisecond)
	return c
}

// writeTwice makes the second write hit the state in which write(2) raises
// SIGPIPE: the first one consumes ECONNRESET, the second gets EPIPE.
func writeTwice(c net.Conn) error {
	_, _ = c.Write([]byte("x"))
	_, err := c.Write([]byte("x"))
	return err
}

func sigpipeWithin(ch <-chan os.Signal, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// TestWritesNeverRaiseSIGPIPE proves the wrapper's writes fail with EPIPE
// without raising SIGPIPE, which would kill a host that reset the signal to
// SIG_DFL. The control case shows the test sees SIGPIPE when it is raised.
func TestWritesNeverRaiseSIGPIPE(t *testing.T) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGPIPE)
	defer signal.Stop(sig)

	plain := resetPair(t)
	if err := writeTwice(plain); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("control: got %v, want EPIPE", err)
	}
	if !sigpipeWithin(sig, time.Second) {
		t.Fatal("control: a plain write on a reset socket raised no SIGPIPE; the test cannot tell")
	}

	safe, err := noSigPipe(resetPair(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeTwice(safe); !errors.Is(err, syscall.EPIPE) || CodeOf(err) != CodeReset {
		t.Fatalf("got %v (%v), want EPIPE classified as reset", err, CodeOf(err))
	}
	if sigpipeWithin(sig, 200*time.Millisecond) {
		t.Fatal("a write through noSigPipe raised SIGPIPE")
	}
}
