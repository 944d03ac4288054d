package core

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/steadyws/steadyws/core/wstest"
)

// deflateServer negotiates permessage-deflate (answering with params) and
// then writes frames.
func deflateServer(t *testing.T, params wsflate.Parameters, frames ...ws.Frame) *wstest.Server {
	return wstest.NewRaw(t, func(_ int, c net.Conn) {
		u := ws.Upgrader{Negotiate: func(opt httphead.Option) (httphead.Option, error) {
			if string(opt.Name) != wsflate.ExtensionName {
				return httphead.Option{}, nil
			}
			return params.Option(), nil
		}}
		if _, err := u.Upgrade(c); err != nil {
			return
		}
		for _, f := range frames {
			if err := ws.WriteFrame(c, f); err != nil {
				return
			}
		}
		wstest.Echo(c)
	})
}

func compressed(t *testing.T, f ws.Frame) ws.Frame {
	t.Helper()
	c, err := wsflate.CompressFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var noTakeover = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

func TestDeflateInflatesMessages(t *testing.T) {
	text := strings.Repeat(`{"e":"trade","p":"101.5"}`, 200)
	srv := deflateServer(t, noTakeover,
		compressed(t, ws.NewTextFrame([]byte(text))),
		compressed(t, ws.NewBinaryFrame(bytes.Repeat([]byte{1, 2, 3}, 1000))),
		ws.NewTextFrame([]byte("sent plain")), // RFC 7692 6: compression is per message
	)
	c := open(t, Options{URL: srv.URL, Compression: "deflate"})
	mustOpen(t, c)
	if ev := next(t, c); ev.Kind != EventText || string(ev.Data) != text {
		t.Fatalf("text: %v %d bytes %q", ev.Kind, len(ev.Data), ev.Data)
	}
	if ev := next(t, c); ev.Kind != EventBinary || !bytes.Equal(ev.Data, bytes.Repeat([]byte{1, 2, 3}, 1000)) {
		t.Fatalf("binary: %v %d bytes", ev.Kind, len(ev.Data))
	}
	if ev := next(t, c); string(ev.Data) != "sent plain" {
		t.Fatalf("plain: %q", ev.Data)
	}
	if s := c.Stats(); s[StatCompressedIn] != 2 {
		t.Fatalf("compressed_in %d", s[StatCompressedIn])
	}
}

// TestDeflateBombIsTooBig: 16 MiB of zeros compress to a few KiB; the
// inflated size is capped by max_message_size (RFC 7692 8.1), so the bomb
// ends in 1009 after at most max+1 bytes of output, not in an OOM.
func TestDeflateBombIsTooBig(t *testing.T) {
	bomb := compressed(t, ws.NewBinaryFrame(make([]byte, 16<<20)))
	if bomb.Header.Length > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed", bomb.Header.Length)
	}
	srv := deflateServer(t, noTakeover, bomb)
	c := open(t, Options{URL: srv.URL, Compression: "deflate", MaxMessageSize: 1 << 20})
	mustOpen(t, c)
	if ev := nextOf(t, c, EventClosed); ev.End.Err != CodeMessageTooBig || ev.End.Code != CloseMessageTooBig {
		t.Fatalf("got %+v", ev)
	}
}

func TestDeflateChecksUTF8AfterInflating(t *testing.T) {
	srv := deflateServer(t, noTakeover, compressed(t, ws.NewTextFrame([]byte("ok \xff\xfe"))))
	c := open(t, Options{URL: srv.URL, Compression: "deflate"})
	mustOpen(t, c)
	if ev := nextOf(t, c, EventClosed); ev.End.Err != CodeProtocol || ev.End.Code != CloseInvalidPayload {
		t.Fatalf("got %+v", ev)
	}
}

// TestDeflateClientWindowBits: we offer client_max_window_bits without a
// value; a server that answers it with a window (8-15) is accepted and its
// compressed messages inflate; an answer without a value fails the
// handshake (RFC 7692 7.1.2.2).
func TestDeflateClientWindowBits(t *testing.T) {
	var offered string
	srv := wstest.NewRaw(t, func(_ int, c net.Conn) {
		u := ws.Upgrader{Negotiate: func(opt httphead.Option) (httphead.Option, error) {
			if string(opt.Name) != wsflate.ExtensionName {
				return httphead.Option{}, nil
			}
			offered = opt.String()
			var p wsflate.Parameters
			if err := p.Parse(opt); err != nil || p.ClientMaxWindowBits != 1 {
				return httphead.Option{}, nil // no window bits offered: no compression
			}
			return wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ClientMaxWindowBits: 10}.Option(), nil
		}}
		if _, err := u.Upgrade(c); err == nil {
			_ = ws.WriteFrame(c, compressed(t, ws.NewTextFrame([]byte("squeezed"))))
			wstest.Echo(c)
		}
	})
	c := open(t, Options{URL: srv.URL, Compression: "deflate"})
	mustOpen(t, c)
	if ev := nextOf(t, c, EventText); string(ev.Data) != "squeezed" {
		t.Fatalf("got %q", ev.Data)
	}
	if c.Stats()[StatCompressedIn] != 1 {
		t.Fatalf("offer %q: the message did not come compressed", offered)
	}

	valueless := deflateServer(t, wsflate.Parameters{ClientMaxWindowBits: offeredBits})
	c = open(t, Options{URL: valueless.URL, Compression: "deflate"})
	if ev := next(t, c); ev.Kind != EventClosed || ev.End.Err != CodeHandshake {
		t.Fatalf("got %+v", ev)
	}
}

func TestDeflateWindowKeepsTheLast32KiB(t *testing.T) {
	f := &inflater{takeover: true}
	f.inflated(bytes.Repeat([]byte{1}, 40<<10))
	f.inflated([]byte{2, 3})
	if len(f.window) != windowSize || f.window[windowSize-3] != 1 || !bytes.Equal(f.window[windowSize-2:], []byte{2, 3}) {
		t.Fatalf("window of %d bytes ends %v", len(f.window), f.window[len(f.window)-3:])
	}
	off := &inflater{}
	if off.inflated([]byte{1}); off.window != nil {
		t.Fatal("no context takeover keeps no window")
	}
}

// TestCompressedBitWithoutNegotiation: RSV1 on a connection without the
// extension is a protocol error (RFC 6455 5.2).
func TestCompressedBitWithoutNegotiation(t *testing.T) {
	srv := deflateServer(t, noTakeover, compressed(t, ws.NewTextFrame([]byte("x"))))
	c := open(t, Options{URL: srv.URL}) // no compression offered: the server must not use it
	mustOpen(t, c)
	if ev := nextOf(t, c, EventClosed); ev.End.Err != CodeProtocol || ev.End.Code != CloseProtocolError {
		t.Fatalf("got %+v", ev)
	}
}

func TestCompressionOptionIsChecked(t *testing.T) {
	if _, err := Open(Options{URL: "ws://x/", Compression: "gzip"}); CodeOf(err) != CodeInvalidArgument {
		t.Fatalf("got %v", err)
	}
}
