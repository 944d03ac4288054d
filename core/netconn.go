package core

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
)

var errHandshakeTooLarge = errors.New("handshake response exceeds max_handshake_size")

// handshakeConn counts the bytes read while the opening handshake runs, so
// a server that answers with an endless header cannot grow our memory.
// Once the handshake is done, done() lifts the limit.
type handshakeConn struct {
	net.Conn
	budget  atomic.Int64
	limited atomic.Bool
}

func newHandshakeConn(c net.Conn, budget int64) *handshakeConn {
	h := &handshakeConn{Conn: c}
	h.budget.Store(budget)
	h.limited.Store(true)
	return h
}

func (h *handshakeConn) Read(p []byte) (int, error) {
	if !h.limited.Load() {
		return h.Conn.Read(p)
	}
	left := h.budget.Load()
	if left <= 0 {
		return 0, errHandshakeTooLarge
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := h.Conn.Read(p)
	h.budget.Add(-int64(n))
	return n, err
}

func (h *handshakeConn) done() { h.limited.Store(false) }

// netDial connects TCP and wraps the socket so that writes can never raise
// SIGPIPE in the host process (see noSigPipe).
func netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return noSigPipe(c)
}
