package core

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// memConn is a net.Conn over bytes: reads come from r, writes vanish. The
// fuzz targets use it to feed the parsers what a network could send.
type memConn struct{ r io.Reader }

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }
func frame(op ws.OpCode, fin bool, p string) []byte {
	return frameBytes(ws.NewFrame(op, fin, []byte(p)))
}
func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
func closeBody(code int, reason string) []byte {
	return ws.NewCloseFrameBody(ws.StatusCode(code), reason)
}

const fuzzMaxMessage = 4096

// FuzzReadFrames feeds a server's byte stream, after the handshake, to the
// reader: it must end with an error (never a panic, never a hang), and
// whatever it queued must respect max_message_size and be valid UTF-8 text.
func FuzzReadFrames(f *testing.F) {
	f.Add(frame(ws.OpText, true, "hello"))
	f.Add(concat(frame(ws.OpText, false, "hel"), frame(ws.OpPing, true, "hb"), frame(ws.OpContinuation, true, "lo")))
	f.Add(concat(frame(ws.OpBinary, true, "\x00\x01"), frameBytes(ws.NewCloseFrame(closeBody(1000, "bye")))))
	f.Add(frame(ws.OpText, true, "\xff\xfe"))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // a 2^64-1 length
	f.Add(frame(ws.OpContinuation, true, "orphan"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		s, err := Options{URL: "ws://fuzz.test/", MaxMessageSize: fuzzMaxMessage, MaxQueue: 4, Overflow: OverflowDropOldest}.validate()
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(s)
		cn := newConn(c, &dialed{conn: &memConn{r: bytes.NewReader(nil)}, reader: bufio.NewReader(bytes.NewReader(stream))})
		if err := c.readLoop(cn); err == nil {
			t.Fatal("the reader ended without an error")
		}
		events := make([]Event, 16)
		n, _, _ := c.Poll(events, 1<<20, 0)
		for _, ev := range events[:n] {
			if len(ev.Data) > fuzzMaxMessage || (ev.Kind == EventText && !utf8.Valid(ev.Data)) {
				t.Fatalf("queued %v of %d bytes", ev.Kind, len(ev.Data))
			}
		}
	})
}

// FuzzHandshakeResponse answers our opening handshake with arbitrary bytes:
// the result is an error with a code, or a connection, never a panic, and
// never more than max_handshake_size read.
func FuzzHandshakeResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 429 Too Many\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\n<html>"))
	f.Add([]byte("\x16\x03\x01garbage"))
	f.Fuzz(func(t *testing.T, resp []byte) {
		s, err := Options{URL: "ws://fuzz.test/path?q=1", MaxHandshakeSize: 1024, Subprotocols: []string{"json"}}.validate()
		if err != nil {
			t.Fatal(err)
		}
		a := &attempt{s: s}
		d := a.dialer(nil)
		src := &countingReader{r: bytes.NewReader(resp)}
		hc := newHandshakeConn(&memConn{r: src}, s.MaxHandshakeSize)
		_, _, err = d.Upgrade(hc, s.url)
		if src.n > s.MaxHandshakeSize {
			t.Fatalf("read %d bytes of handshake, limit %d", src.n, s.MaxHandshakeSize)
		}
		if err != nil && CodeOf(dialError(t.Context(), a.status, err)) == CodeOK {
			t.Fatalf("error %v has no code", err)
		}
		if a.retryAfter < 0 || a.retryAfter > maxRetryAfter {
			t.Fatalf("retry after %v", a.retryAfter)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// FuzzParseClose checks close frame bodies (RFC 6455 5.5.1, 7.4): either a
// protocol error, or a code that may be received and a UTF-8 reason.
func FuzzParseClose(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03})
	f.Add(closeBody(1000, "bye"))
	f.Add(closeBody(1005, ""))
	f.Add(closeBody(4999, "x"))
	f.Add(append(closeBody(1000, ""), 0xff))
	f.Fuzz(func(t *testing.T, body []byte) {
		ce, err := parseClose(body)
		if err != nil {
			if CodeOf(err) != CodeProtocol {
				t.Fatalf("%v is not a protocol error", err)
			}
			return
		}
		if len(body) > 0 && (ce.Code < 1000 || ce.Code > 4999 || !utf8.ValidString(ce.Reason)) {
			t.Fatalf("accepted %+v", ce)
		}
	})
}

// FuzzDeflateParams answers our permessage-deflate offer with arbitrary
// Sec-WebSocket-Extensions values (RFC 7692 7): accepted, or refused with
// an error, never both, and no panic.
func FuzzDeflateParams(f *testing.F) {
	f.Add("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	f.Add("permessage-deflate; server_max_window_bits=10")
	f.Add("permessage-deflate; client_max_window_bits")
	f.Add("x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover")
	f.Add("permessage-deflate; server_no_context_takeover=1")
	f.Fuzz(func(t *testing.T, header string) {
		opts, ok := httphead.ParseOptions([]byte(header), nil)
		if !ok {
			return
		}
		accepted, err := acceptDeflate(opts)
		if accepted != nil && err != nil {
			t.Fatal("accepted with an error")
		}
	})
}
