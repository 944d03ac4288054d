package core

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// readBufferSize is the size of the buffered reader over the socket: large
// enough that a flood of small frames costs one read(2) per many frames.
const readBufferSize = 64 << 10

// dialed is the outcome of a successful opening handshake.
type dialed struct {
	conn        net.Conn
	raw         net.Conn      // the socket under TLS (conn itself for ws://)
	reader      *bufio.Reader // holds any frames that came with the 101
	subprotocol string
	inflate     *inflater // permessage-deflate state, nil unless negotiated
}

// dial runs TCP connect, TLS and the opening handshake (RFC 6455 4.1) under
// one deadline, OpenTimeout, and cancellation by ctx.
func dial(ctx context.Context, s *settings, header http.Header) (*dialed, error) {
	a := &attempt{s: s}
	d := a.dialer(header)
	conn, br, hs, err := d.Dial(ctx, s.url.String())
	if err != nil {
		e := a.tlsError(ctx, err)
		if e == nil {
			e = dialError(ctx, a.status, err)
		}
		e.RetryAfter = a.retryAfter
		return nil, e
	}
	inflate, err := acceptDeflate(hs.Extensions)
	if err != nil {
		conn.Close()
		return nil, &Error{Code: CodeHandshake, Op: "dial", Err: err}
	}
	a.hc.done()
	return &dialed{conn: conn, raw: a.raw, reader: bufferedReader(conn, br), subprotocol: hs.Protocol, inflate: inflate}, nil
}

// attempt is what one opening handshake learns on the way.
type attempt struct {
	s          *settings
	hc         *handshakeConn
	raw        net.Conn      // the socket
	tls        *tls.Conn     // its TLS layer, for wss://
	certAsked  bool          // the server asked for a client certificate
	status     int           // the HTTP status of a refusal
	retryAfter time.Duration // what a 429 or 503 asked for
}

// tlsClient starts TLS over the socket, as gobwas/ws would, keeping the
// connection so that a failure can be told apart from an HTTP one.
func (a *attempt) tlsClient(conn net.Conn, hostname string) net.Conn {
	cfg := a.s.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = hostname
	}
	certs := cfg.Certificates
	cfg.Certificates = nil
	// Noted, so that a server that then hangs up can be told apart from one
	// that crashed: in TLS 1.3 it refuses a client certificate only after
	// our side of the handshake is complete.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		a.certAsked = true
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil
	}
	a.tls = tls.Client(conn, cfg)
	return a.tls
}

// tlsError is the TLS failure behind err, or nil if TLS is not to blame: a
// handshake that did not complete (a plain-TCP port answers garbage or
// hangs up), or an alert from the server right after it (TLS 1.3 servers
// refuse a missing client certificate that way).
func (a *attempt) tlsError(ctx context.Context, err error) *Error {
	if a.tls == nil || ctx.Err() != nil || isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var opErr *net.OpError
	var recordErr tls.RecordHeaderError
	hungUp := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
	switch {
	case a.certAsked && a.s.CertFile == "" && (hungUp || errors.As(err, &opErr) && opErr.Op == "remote error"):
		return &Error{Code: CodeTLS, Op: "tls", Err: fmt.Errorf("the server requires a client certificate (cert_file, key_file) and refused the connection: %w", err)}
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return &Error{Code: CodeTLS, Op: "tls", Err: fmt.Errorf("the server refused the TLS connection: %w", err)}
	case a.tls.ConnectionState().HandshakeComplete:
		return nil
	case errors.As(err, &recordErr), hungUp:
		return &Error{Code: CodeTLS, Op: "tls", Err: fmt.Errorf("TLS handshake failed: %w (the server does not speak TLS on this port?)", err)}
	}
	return &Error{Code: CodeTLS, Op: "tls", Err: fmt.Errorf("TLS handshake failed: %w", err)}
}

// dialer configures gobwas/ws for one attempt: our socket wrapper, the
// handshake size limit, and the refusal's status and Retry-After.
func (a *attempt) dialer(header http.Header) ws.Dialer {
	var exts []httphead.Option
	if a.s.Compression == "deflate" {
		exts = []httphead.Option{deflateOffer}
	}
	return ws.Dialer{
		Extensions: exts,
		Timeout:    a.s.OpenTimeout,
		Protocols:  a.s.Subprotocols,
		Header:     ws.HandshakeHeaderHTTP(requestHeader(a.s.url, header)),
		NetDial:    a.netDial,
		TLSClient:  a.tlsClient,
		WrapConn: func(c net.Conn) net.Conn {
			a.hc = newHandshakeConn(c, a.s.MaxHandshakeSize)
			return a.hc
		},
		OnStatusError: func(code int, _ []byte, resp io.Reader) {
			a.status = code
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				a.retryAfter = readRetryAfter(resp)
			}
		},
	}
}

// netDial connects to the server, or to the proxy and through it.
func (a *attempt) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if a.s.proxy != nil {
		return dialProxy(ctx, a.s.proxy, addr, a.s.MaxHandshakeSize, &a.raw)
	}
	c, err := netDial(ctx, network, addr)
	a.raw = c
	return c, err
}

// requestHeader adds Basic credentials from the URL's user info, like
// browsers and the websockets library do, unless the caller set
// Authorization.
func requestHeader(url *url.URL, header http.Header) http.Header {
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if u := url.User; u != nil && h.Get("Authorization") == "" {
		pass, _ := u.Password()
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	return h
}

// bufferedReader returns the reader for frames. gobwas/ws hands back br when
// the server's first frames arrived in the same read as the 101 response:
// those bytes come first, then the socket.
func bufferedReader(conn net.Conn, br *bufio.Reader) *bufio.Reader {
	if br == nil || br.Buffered() == 0 {
		return bufio.NewReaderSize(conn, readBufferSize)
	}
	early, _ := br.Peek(br.Buffered())
	early = bytes.Clone(early)
	ws.PutReader(br)
	return bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), conn), readBufferSize)
}

// maxRetryAfter bounds how long a server may make us wait.
const maxRetryAfter = time.Hour

// readRetryAfter reads the headers of a refused handshake for Retry-After
// (RFC 9110 10.2.3): delay-seconds or an HTTP date.
func readRetryAfter(resp io.Reader) time.Duration {
	tp := textproto.NewReader(bufio.NewReader(resp))
	if _, err := tp.ReadLine(); err != nil {
		return 0
	}
	h, _ := tp.ReadMIMEHeader() // a partial header is still worth reading
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return min(time.Duration(max(secs, 0))*time.Second, maxRetryAfter)
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(at), 0), maxRetryAfter)
	}
	return 0
}

// dialError wraps a failed dial once, with the code a user can act on.
func dialError(ctx context.Context, status int, err error) *Error {
	e := &Error{Code: CodeOf(err), Op: "dial", Status: status, Err: err}
	var proxyErr *Error
	switch {
	case ctx.Err() == context.Canceled:
		e.Code = CodeClosed
	case errors.As(err, &proxyErr) && proxyErr.Op == "proxy":
		return proxyErr
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// TCP (and TLS) worked, but the server hung up instead of answering.
		e.Code, e.Err = CodeHandshake, errors.New("server closed the connection during the opening handshake")
	case e.Code == CodeClosed:
		e.Code = CodeNetwork
	}
	return e
}
