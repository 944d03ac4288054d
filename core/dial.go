package core

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/gobwas/ws"
)

// readBufferSize is the size of the buffered reader over the socket: large
// enough that a flood of small frames costs one read(2) per many frames.
const readBufferSize = 64 << 10

// dialed is the outcome of a successful opening handshake.
type dialed struct {
	conn        net.Conn
	reader      io.Reader // buffered; holds any frames that came with the 101
	subprotocol string
}

// dial runs TCP connect, TLS and the opening handshake (RFC 6455 4.1) under
// one deadline, OpenTimeout, and cancellation by ctx.
func dial(ctx context.Context, s *settings) (*dialed, error) {
	var hc *handshakeConn
	var status int
	d := ws.Dialer{
		Timeout:   s.OpenTimeout,
		Protocols: s.Subprotocols,
		Header:    ws.HandshakeHeaderHTTP(requestHeader(s)),
		NetDial:   netDial,
		TLSConfig: s.tls,
		WrapConn: func(c net.Conn) net.Conn {
			hc = newHandshakeConn(c, s.MaxHandshakeSize)
			return hc
		},
		OnStatusError: func(code int, _ []byte, _ io.Reader) { status = code },
	}
	conn, br, hs, err := d.Dial(ctx, s.url.String())
	if err != nil {
		return nil, dialError(ctx, status, err)
	}
	hc.done()
	return &dialed{conn: conn, reader: bufferedReader(conn, br), subprotocol: hs.Protocol}, nil
}

// requestHeader adds Basic credentials from the URL's user info, like
// browsers and the websockets library do, unless the caller set
// Authorization.
func requestHeader(s *settings) http.Header {
	h := s.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if u := s.url.User; u != nil && h.Get("Authorization") == "" {
		pass, _ := u.Password()
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	return h
}

// bufferedReader returns the reader for frames. gobwas/ws hands back br when
// the server's first frames arrived in the same read as the 101 response:
// those bytes come first, then the socket.
func bufferedReader(conn net.Conn, br *bufio.Reader) io.Reader {
	if br == nil || br.Buffered() == 0 {
		return bufio.NewReaderSize(conn, readBufferSize)
	}
	early, _ := br.Peek(br.Buffered())
	early = bytes.Clone(early)
	ws.PutReader(br)
	return bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), conn), readBufferSize)
}

// dialError wraps a failed dial once, with the code a user can act on.
func dialError(ctx context.Context, status int, err error) *Error {
	e := &Error{Code: classify(err), Op: "dial", Status: status, Err: err}
	switch {
	case ctx.Err() == context.Canceled:
		e.Code = CodeClosed
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// TCP (and TLS) worked, but the server hung up instead of answering.
		e.Code, e.Err = CodeHandshake, errors.New("server closed the connection during the opening handshake")
	case e.Code == CodeClosed:
		e.Code = CodeNetwork
	}
	return e
}
