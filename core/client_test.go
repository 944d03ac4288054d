package core

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

const waitLong = 5 * time.Second

func open(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort(waitLong) })
	return c
}

// next returns the next event, failing the test after waitLong.
func next(t *testing.T, c *Client) Event {
	t.Helper()
	var ev [1]Event
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		n, _, err := c.Poll(ev[:], 64<<20, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n == 1 {
			return ev[0]
		}
	}
	t.Fatal("no event")
	return Event{}
}

// nextOf skips events until one of kind.
func nextOf(t *testing.T, c *Client, kind EventKind) Event {
	t.Helper()
	for {
		if ev := next(t, c); ev.Kind == kind {
			return ev
		}
	}
}

func mustOpen(t *testing.T, c *Client) {
	t.Helper()
	if ev := next(t, c); ev.Kind != EventOpen {
		t.Fatalf("first event %v (err %v), want open", ev.Kind, c.Err())
	}
}

func TestEchoRoundTrip(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL, MaxMessageSize: 4 << 20})
	mustOpen(t, c)
	for _, size := range []int{0, 125, 126, 65535, 65536, 3 << 20} {
		text := strings.Repeat("é", size/2)
		if err := c.Send([]byte(text), SendText, 0); err != nil {
			t.Fatal(err)
		}
		ev := next(t, c)
		if ev.Kind != EventText || string(ev.Data) != text || ev.Runes != size/2 {
			t.Fatalf("size %d: got kind %v len %d runes %d", size, ev.Kind, len(ev.Data), ev.Runes)
		}
	}
	bin := bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
	if err := c.Send(bin, 0, 0); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c); ev.Kind != EventBinary || !bytes.Equal(ev.Data, bin) {
		t.Fatalf("binary: got %v", ev.Kind)
	}
}

func TestSendDoesNotMaskCallerMemory(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL})
	mustOpen(t, c)
	p := []byte("keep me as I am")
	if err := c.Send(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	if string(p) != "keep me as I am" {
		t.Fatalf("payload was modified: %q", p)
	}
}

func TestCloseHandshake(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL})
	mustOpen(t, c)
	if err := c.Close(CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(CloseNormal, "again"); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ev := next(t, c)
	if ev.Kind != EventClosed || ev.End.Code != CloseNormal || ev.End.Err != CodeOK {
		t.Fatalf("got %+v", ev)
	}
	<-c.Done()
	if c.State() != StateClosed {
		t.Fatalf("state %v", c.State())
	}
	if err := c.Send([]byte("x"), SendText, 0); CodeOf(err) != CodeClosed {
		t.Fatalf("send after close: %v", err)
	}
}

func TestCloseTimeoutWhenServerIgnoresClose(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 1<<16)); time.Sleep(3 * time.Second) })
	c := open(t, Options{URL: srv.URL, CloseTimeout: 300 * time.Millisecond})
	mustOpen(t, c)
	start := time.Now()
	_ = c.Close(CloseNormal, "")
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("close did not finish")
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 2*time.Second {
		t.Fatalf("close took %v, want about close_timeout", took)
	}
	// Our own close is the end, even if the server never answers it.
	if ev := next(t, c); ev.Kind != EventClosed || ev.End != (End{Code: CloseNormal, ClosedBy: SideClient}) {
		t.Fatalf("got %+v", ev)
	}
}

func TestRemoteClose(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) {
		_ = wsutil.WriteServerMessage(c, ws.OpText, []byte("last"))
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "bye")))
		_, _, _ = wsutil.ReadClientData(c) // the echoed close frame
	})
	c := open(t, Options{URL: srv.URL})
	mustOpen(t, c)
	if ev := next(t, c); string(ev.Data) != "last" {
		t.Fatalf("got %+v", ev)
	}
	for _, kind := range []EventKind{EventDisconnected, EventClosed} {
		if ev := next(t, c); ev.Kind != kind || ev.End.Code != 4001 || string(ev.Data) != "bye" || ev.End.Err != CodeOK {
			t.Fatalf("got %+v, want kind %v", ev, kind)
		}
	}
}

// sendRaw writes raw bytes as the server and returns the close code the
// client answers with.
func closeCodeAfter(t *testing.T, raw []byte, o Options) (Event, int) {
	t.Helper()
	got := make(chan int, 1)
	srv := wstest.New(t, func(c net.Conn) {
		_, _ = c.Write(raw)
		for {
			f, err := ws.ReadFrame(c)
			if err != nil {
				got <- 0
				return
			}
			if f.Header.OpCode == ws.OpClose {
				f = ws.UnmaskFrameInPlace(f)
				code, _ := ws.ParseCloseFrameData(f.Payload)
				got <- int(code)
				return
			}
		}
	})
	o.URL = srv.URL
	c := open(t, o)
	mustOpen(t, c)
	ev := nextOf(t, c, EventClosed)
	select {
	case code := <-got:
		return ev, code
	case <-time.After(waitLong):
		t.Fatal("server saw no close frame")
	}
	return ev, 0
}

func frameBytes(f ws.Frame) []byte {
	b, err := ws.CompileFrame(f)
	if err != nil {
		panic(err)
	}
	return b
}

func TestPeerErrorsCloseWithTheRightCode(t *testing.T) {
	reserved := frameBytes(ws.Frame{Header: ws.Header{Fin: true, OpCode: 0x3, Length: 1}, Payload: []byte("x")})
	rsv := frameBytes(ws.Frame{Header: ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpText, Length: 1}, Payload: []byte("x")})
	badUTF8 := frameBytes(ws.NewTextFrame([]byte{0xff, 0xfe}))
	big := frameBytes(ws.NewBinaryFrame(make([]byte, 2000)))
	for _, tc := range []struct {
		name      string
		raw       []byte
		wantCode  int
		wantError Code
	}{
		{name: "reserved opcode, RFC 6455 5.2", raw: reserved, wantCode: CloseProtocolError, wantError: CodeProtocol},
		{name: "RSV bit without extension, RFC 6455 5.2", raw: rsv, wantCode: CloseProtocolError, wantError: CodeProtocol},
		{name: "invalid UTF-8 text, RFC 6455 8.1", raw: badUTF8, wantCode: CloseInvalidPayload, wantError: CodeProtocol},
		{name: "message too big, RFC 6455 10.4", raw: big, wantCode: CloseMessageTooBig, wantError: CodeMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, sent := closeCodeAfter(t, tc.raw, Options{MaxMessageSize: 1000})
			if sent != tc.wantCode {
				t.Fatalf("client sent close %d, want %d", sent, tc.wantCode)
			}
			if ev.Kind != EventClosed || ev.End.Code != tc.wantCode || ev.End.Err != tc.wantError {
				t.Fatalf("event %+v", ev)
			}
		})
	}
}

func TestFragmentsWithPingBetween(t *testing.T) {
	pong := make(chan string, 1)
	srv := wstest.New(t, func(c net.Conn) {
		_ = ws.WriteFrame(c, ws.NewFrame(ws.OpText, false, []byte("hel")))
		_ = ws.WriteFrame(c, ws.NewPingFrame([]byte("hb")))
		_ = ws.WriteFrame(c, ws.NewFrame(ws.OpContinuation, true, []byte("lo")))
		f, err := ws.ReadFrame(c)
		if err == nil && f.Header.OpCode == ws.OpPong {
			pong <- string(ws.UnmaskFrameInPlace(f).Payload)
		}
		wstest.Echo(c)
	})
	c := open(t, Options{URL: srv.URL})
	mustOpen(t, c)
	if ev := next(t, c); string(ev.Data) != "hello" {
		t.Fatalf("got %q", ev.Data)
	}
	select {
	case p := <-pong:
		if p != "hb" {
			t.Fatalf("pong payload %q", p)
		}
	case <-time.After(waitLong):
		t.Fatal("no pong")
	}
}

func TestBackpressureKeepsEverything(t *testing.T) {
	const total = 200
	srv := wstest.New(t, func(c net.Conn) {
		for i := 0; i < total; i++ {
			if wsutil.WriteServerMessage(c, ws.OpBinary, []byte{byte(i)}) != nil {
				return
			}
		}
		wstest.Echo(c)
	})
	c := open(t, Options{URL: srv.URL, MaxQueue: 4})
	mustOpen(t, c)
	time.Sleep(100 * time.Millisecond) // let the reader fill the queue
	if depth, _, _, _, _ := c.q.depth(); depth > 4 {
		t.Fatalf("queue depth %d over max_queue", depth)
	}
	for i := 0; i < total; i++ {
		if ev := nextOf(t, c, EventBinary); ev.Data[0] != byte(i) {
			t.Fatalf("message %d out of order: %d", i, ev.Data[0])
		}
	}
}

func TestDialFailures(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "ws://" + ln.Addr().String() + "/"
	ln.Close()
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	for _, tc := range []struct {
		name string
		o    Options
		want Code
	}{
		{name: "refused", o: Options{URL: refused}, want: CodeRefused},
		{name: "dns", o: Options{URL: "ws://nosuchhost.invalid/"}, want: CodeDNS},
		{name: "timeout", o: Options{URL: "ws://" + silent.Addr().String() + "/", OpenTimeout: 200 * time.Millisecond}, want: CodeTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, tc.o)
			ev := next(t, c)
			if ev.Kind != EventClosed || ev.End.Err != tc.want {
				t.Fatalf("got %+v (%v)", ev, c.Err())
			}
		})
	}
}

func TestHandshakeStatus(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Read(make([]byte, 4096))
		_, _ = c.Write([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
	}()
	c := open(t, Options{URL: "ws://" + ln.Addr().String() + "/"})
	ev := next(t, c)
	if ev.End.Err != CodeHandshake || ev.End.Status != 403 {
		t.Fatalf("got %+v", ev)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{o: Options{URL: "http://x/"}, want: "url"},
		{o: Options{URL: "ws:///path"}, want: "url"},
		{o: Options{URL: "ws://h:70000/"}, want: "url"},
		{o: Options{URL: "ws://h/", Header: map[string][]string{"X": {"a\r\nb"}}}, want: "headers"},
		{o: Options{URL: "ws://h/", Subprotocols: []string{"a b"}}, want: "subprotocols"},
		{o: Options{URL: "ws://h/", OpenTimeout: -5}, want: "open_timeout"},
		{o: Options{URL: "ws://h/", MaxMessageSize: -1}, want: "max_message_size"},
		{o: Options{URL: "ws://h/", MaxQueue: MaxQueueLimit + 1}, want: "max_queue"},
		{o: Options{URL: "wss://h/", CAFile: "/nonexistent"}, want: "ca_file"},
		{o: Options{URL: "wss://h/", CertFile: "/x"}, want: "cert_file"},
	} {
		_, err := Open(tc.o)
		if CodeOf(err) != CodeInvalidArgument || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an invalid %s", tc.o, err, tc.want)
		}
	}
}

func TestCloseCodeValidation(t *testing.T) {
	for code, ok := range map[int]bool{1000: true, 1001: true, 1011: true, 3000: true, 4999: true,
		999: false, 1004: false, 1005: false, 1006: false, 1015: false, 2000: false, 5000: false} {
		if err := ValidateCloseCode(code); (err == nil) != ok {
			t.Errorf("code %d: %v", code, err)
		}
	}
	if err := validCloseReason(strings.Repeat("x", 124)); CodeOf(err) != CodeInvalidArgument {
		t.Errorf("long reason accepted")
	}
}

func TestRecoverTurnsPanicIntoError(t *testing.T) {
	err := safely("test", func() error { panic("boom") })
	if CodeOf(err) != CodeInternal || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Code
	}{
		{err: nil, want: CodeOK},
		{err: ws.StatusError(500), want: CodeHandshake},
		{err: ws.ErrHandshakeBadSecAccept, want: CodeHandshake},
		{err: &net.DNSError{Err: "no such host"}, want: CodeDNS},
		{err: wsutil.ErrMessageTooLarge, want: CodeMessageTooBig},
		{err: ws.ErrProtocolOpCodeReserved, want: CodeProtocol},
		{err: &CloseError{Code: 1000}, want: CodeClosed},
		{err: errors.New("other"), want: CodeNetwork},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestEncodeDecodeEvents(t *testing.T) {
	in := []Event{
		{Kind: EventOpen, Data: []byte("json")},
		{Kind: EventText, Data: []byte("héllo"), Runes: 5},
		{Kind: EventBinary, Data: []byte{0, 1}},
		End{Code: 1006, Status: 503, Err: CodeHandshake, Dialing: true, Detail: "r"}.event(EventClosed),
		End{Code: 4001, Reason: "bye", ClosedBy: SideServer}.event(EventDisconnected),
		{Kind: EventReconnecting, Runes: 7, Delay: 1500 * time.Millisecond},
	}
	meta := make([]uint32, len(in)*MetaWords)
	data := make([]byte, 64)
	n, size := EncodeEvents(in, meta, data)
	if n != len(in) || size != 4+6+2+1+3 {
		t.Fatalf("n %d size %d", n, size)
	}
	out := DecodeEvents(meta, data, n)
	for i := range in {
		if out[i].Kind != in[i].Kind || !bytes.Equal(out[i].Data, in[i].Data) || out[i].Runes != in[i].Runes ||
			out[i].End.Code != in[i].End.Code || out[i].End.Status != in[i].End.Status || out[i].End.Err != in[i].End.Err ||
			out[i].End != in[i].End || out[i].Delay != in[i].Delay {
			t.Errorf("event %d: %+v != %+v", i, out[i], in[i])
		}
	}
	if n, _ := EncodeEvents(in, meta, data[:3]); n != 0 {
		t.Fatalf("encoded %d events into 3 bytes", n)
	}
}

func FuzzEncodeEvents(f *testing.F) {
	f.Add([]byte("hello"), uint8(1), 16)
	f.Add([]byte{}, uint8(4), 0)
	f.Fuzz(func(t *testing.T, payload []byte, kind uint8, dataCap int) {
		if dataCap < 0 || dataCap > 1<<16 {
			return
		}
		in := []Event{{Kind: EventKind(kind), Data: payload}, {Kind: EventBinary, Data: payload}}
		meta := make([]uint32, len(in)*MetaWords)
		n, size := EncodeEvents(in, meta, make([]byte, dataCap))
		if size > dataCap || n > len(in) || (n > 0 && size < len(payload)) {
			t.Fatalf("n %d size %d cap %d", n, size, dataCap)
		}
	})
}

// TestServerThatNeverClosesTCP: once the close frames are exchanged, a
// server that waits for the client to close TCP does not hold up the end.
func TestServerThatNeverClosesTCP(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) {
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))
		_, _, _ = wsutil.ReadClientData(c)
		time.Sleep(3 * time.Second)
	})
	c := open(t, Options{URL: srv.URL})
	mustOpen(t, c)
	start := time.Now()
	if ev := nextOf(t, c, EventClosed); ev.End.Code != CloseNormal || ev.End.Err != CodeOK {
		t.Fatalf("got %+v", ev)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the end took %v", took)
	}
}

func TestSendBatchKeepsOrderAndTypes(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL})
	mustOpen(t, c)
	big := bytes.Repeat([]byte{7}, 3*writeChunk+5) // spans several flushes
	msgs := [][]byte{[]byte("one"), {1, 2}, big, []byte("four")}
	if err := c.SendBatch(msgs, []bool{true, false, false, true}, 0, 0); err != nil {
		t.Fatal(err)
	}
	for i, want := range []EventKind{EventText, EventBinary, EventBinary, EventText} {
		if ev := next(t, c); ev.Kind != want || !bytes.Equal(ev.Data, msgs[i]) {
			t.Fatalf("message %d: kind %v, %d bytes", i, ev.Kind, len(ev.Data))
		}
	}
	if err := c.SendBatch([][]byte{[]byte("ok"), {0xff}}, []bool{true, true}, 0, 0); CodeOf(err) != CodeInvalidArgument {
		t.Fatalf("invalid UTF-8 in a batch: %v", err)
	}
	if s := c.Stats(); s[StatMessagesOut] != 4 {
		t.Fatalf("messages out %d: the refused batch must send nothing", s[StatMessagesOut])
	}
}

func TestTextRunes(t *testing.T) {
	for _, tc := range []struct {
		in    string
		runes int
		ok    bool
	}{
		{in: "", runes: 0, ok: true},
		{in: "plain ascii, longer than eight bytes", runes: 36, ok: true},
		{in: "héllo wörld and more", runes: 20, ok: true},
		{in: "12345678é", runes: 9, ok: true},
		{in: "\xff", ok: false},
		{in: "abcdefgh\xc3", ok: false},
		{in: "\xed\xa0\x80", ok: false}, // a surrogate, RFC 3629
	} {
		runes, ok := textRunes([]byte(tc.in))
		if ok != tc.ok || (ok && runes != tc.runes) {
			t.Errorf("%q: %d %v, want %d %v", tc.in, runes, ok, tc.runes, tc.ok)
		}
	}
}

// textFlag is the send flag for a text or binary message.
func textFlag(text bool) SendFlags {
	if text {
		return SendText
	}
	return 0
}
