package core

// The conformance harness: Autobahn|Testsuite's client cases (its
// fuzzingserver, https://github.com/crossbario/autobahn-testsuite),
// replayed by a Go server against the real client. As with Autobahn's test
// agents, the client echoes every message it receives; the server writes a
// case's bytes, checks what comes back (echoes, pongs, the close code) and,
// for "fail fast" cases, that the client gave up before the rest was sent.
// The cases themselves are in conformance_cases_test.go.

import (
	"bytes"
	"compress/flate"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/steadyws/steadyws/core/wstest"
)

// step is one thing the server does on the wire.
type step struct {
	raw      []byte
	chop     int           // write raw in pieces of this many bytes; 0 at once
	pause    time.Duration // sleep after writing
	failFast bool          // the client must fail the connection before the next step
	closes   bool          // raw holds the server's close frame
}

// msg is a data message: what the server sends and the client echoes.
type msg struct {
	text bool
	data string
}

// ccase is one or more Autobahn cases with the same expectation.
type ccase struct {
	id      string // Autobahn case id(s)
	rfc     string // the RFC section the case checks
	steps   []step
	echo    []msg    // messages the client must echo, in order
	pongs   []string // pong payloads the client must send, in order
	partial bool     // echo and pongs may stop short: the case's close races them
	close   int      // the close code the client must send
	fail    bool     // the client fails the connection (close is 1002, 1007 or 1009)
	maxSize int64    // max_message_size; 0 for the default
	deflate *wsflate.Parameters
}

// outcome is what the server saw from the client.
type outcome struct {
	echo     []msg
	pongs    []string
	close    int // 1005 for an empty close frame, 0 for none
	failFast []bool
	err      string // the server's own trouble
}

// clientFrames collects a client's frames into an outcome until the close
// frame or the end of the connection, reporting each message or control
// frame on seen.
type clientFrames struct {
	mu      sync.Mutex // guards out while read runs
	out     outcome
	seen    chan struct{}
	closed  chan struct{}
	partial []byte
	partOp  ws.OpCode
}

func (cf *clientFrames) read(c net.Conn) {
	defer close(cf.closed)
	for {
		f, err := ws.ReadFrame(c)
		if err != nil {
			return
		}
		f = ws.UnmaskFrameInPlace(f)
		if cf.record(f) {
			return
		}
		select {
		case cf.seen <- struct{}{}:
		default:
		}
	}
}

// record adds a frame to the outcome and reports whether it was the close.
func (cf *clientFrames) record(f ws.Frame) (closed bool) {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	switch op := f.Header.OpCode; {
	case op == ws.OpClose:
		cf.out.close = CloseNoStatus
		if len(f.Payload) >= 2 {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			cf.out.close = int(code)
		}
		return true
	case op == ws.OpPong:
		cf.out.pongs = append(cf.out.pongs, string(f.Payload))
	case op == ws.OpText || op == ws.OpBinary || op == ws.OpContinuation:
		if op != ws.OpContinuation {
			cf.partOp, cf.partial = op, nil
		}
		cf.partial = append(cf.partial, f.Payload...)
		if f.Header.Fin {
			cf.out.echo = append(cf.out.echo, msg{text: cf.partOp == ws.OpText, data: string(cf.partial)})
		}
	}
	return false
}

// snapshot copies the outcome so far.
func (cf *clientFrames) snapshot() outcome {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	return cf.out
}

// caseWait bounds every wait of the harness: generous, since the largest
// cases move 16 MiB each way under the race detector.
const caseWait = 30 * time.Second

// failFastWait is how long a fail-fast step waits for the client's close.
const failFastWait = 2 * time.Second

// play is the server side of one case.
func (cc *ccase) play(c net.Conn) outcome {
	cf := &clientFrames{seen: make(chan struct{}, 1), closed: make(chan struct{})}
	go cf.read(c)
	defer func() { _ = c.Close(); <-cf.closed }()
	serverClosed := false
	var failFast []bool
	for _, s := range cc.steps {
		if err := writeChopped(c, s.raw, s.chop); err != nil {
			if cc.fail {
				break // the client gave up before reading it all
			}
			return outcome{err: fmt.Sprintf("write: %v", err)}
		}
		serverClosed = serverClosed || s.closes
		time.Sleep(s.pause)
		if s.failFast {
			select {
			case <-cf.closed:
			case <-time.After(failFastWait):
			}
			failFast = append(failFast, cf.snapshot().close != 0)
		}
	}
	if !cc.fail && !serverClosed {
		deadline := time.After(caseWait)
		for o := cf.snapshot(); len(o.echo) < len(cc.echo) || len(o.pongs) < len(cc.pongs); o = cf.snapshot() {
			select {
			case <-cf.seen:
			case <-cf.closed:
				return cf.result(failFast)
			case <-deadline:
				return outcome{err: fmt.Sprintf("%d echoes and %d pongs after %v", len(o.echo), len(o.pongs), caseWait)}
			}
		}
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	}
	select {
	case <-cf.closed:
	case <-time.After(caseWait):
		return outcome{err: "no close frame from the client"}
	}
	return cf.result(failFast)
}

func (cf *clientFrames) result(failFast []bool) outcome {
	o := cf.snapshot()
	o.failFast = failFast
	return o
}

func writeChopped(c net.Conn, p []byte, chop int) error {
	if chop <= 0 {
		chop = len(p)
	}
	for len(p) > 0 {
		n := min(chop, len(p))
		if _, err := c.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// run plays the case against a real client that echoes what it receives.
func (cc *ccase) run(t *testing.T) {
	got := make(chan outcome, 1)
	srv := wstest.NewRaw(t, func(_ int, c net.Conn) {
		u := ws.Upgrader{Negotiate: func(opt httphead.Option) (httphead.Option, error) {
			if cc.deflate == nil || string(opt.Name) != wsflate.ExtensionName {
				return httphead.Option{}, nil
			}
			return cc.deflate.Option(), nil
		}}
		if _, err := u.Upgrade(c); err != nil {
			got <- outcome{err: fmt.Sprintf("upgrade: %v", err)}
			return
		}
		got <- cc.play(c)
	})
	o := Options{URL: srv.URL, MaxMessageSize: cc.maxSize}
	if cc.deflate != nil {
		o.Compression = "deflate"
	}
	c := open(t, o)
	closed := echoUntilClosed(t, c)
	out := <-got
	cc.check(t, out, closed)
}

// echoUntilClosed is the Autobahn test agent: it sends every message back
// and returns the closed event.
func echoUntilClosed(t *testing.T, c *Client) Event {
	t.Helper()
	events := make([]Event, 64)
	deadline := time.Now().Add(caseWait)
	for time.Now().Before(deadline) {
		n, _, err := c.Poll(events, 64<<20, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		for _, ev := range events[:n] {
			switch ev.Kind {
			case EventText, EventBinary:
				_ = c.Send(ev.Data, textFlag(ev.Kind == EventText), 0) // fails once the case has closed
			case EventClosed:
				return ev
			}
		}
	}
	t.Fatal("the client never closed")
	return Event{}
}

func (cc *ccase) check(t *testing.T, out outcome, closed Event) {
	t.Helper()
	if out.err != "" {
		t.Fatalf("server: %s", out.err)
	}
	if out.close != cc.close {
		t.Fatalf("client sent close %d, want %d (closed event: code %d, %v)", out.close, cc.close, closed.End.Code, closed.End.Err)
	}
	if cc.fail && (closed.End.Code != cc.close || closed.End.Err == CodeOK) {
		t.Fatalf("closed event: code %d, error %v; want %d and an error", closed.End.Code, closed.End.Err, cc.close)
	}
	for i, ok := range out.failFast {
		if !ok {
			t.Fatalf("fail-fast step %d: the client had not failed the connection after %v", i, failFastWait)
		}
	}
	partial := cc.partial || cc.fail
	if !sameAs(out.echo, cc.echo, partial) {
		t.Fatalf("echoed %s, want %s", describe(out.echo), describe(cc.echo))
	}
	if !sameAs(out.pongs, cc.pongs, partial) {
		t.Fatalf("pongs %q, want %q", out.pongs, cc.pongs)
	}
}

// sameAs compares what came back with what should have; with partial, a
// prefix is enough.
func sameAs[T comparable](got, want []T, partial bool) bool {
	if len(got) > len(want) || (!partial && len(got) != len(want)) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// describe prints messages short enough to read.
func describe(ms []msg) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d messages [", len(ms))
	for i, m := range ms {
		if i == 4 {
			b.WriteString(" ...")
			break
		}
		if len(m.data) > 40 {
			fmt.Fprintf(&b, " (%d bytes, text %v)", len(m.data), m.text)
		} else {
			fmt.Fprintf(&b, " %q", m.data)
		}
	}
	b.WriteString(" ]")
	return b.String()
}

// runCases runs a table, one subtest per case.
func runCases(t *testing.T, cases []ccase) {
	for i := range cases {
		cc := &cases[i]
		t.Run(cc.id, cc.run)
	}
}

// Frame builders for the case tables.

func raw(op ws.OpCode, fin bool, p []byte) []byte {
	return frameBytes(ws.NewFrame(op, fin, p))
}

func rsvFrame(rsv byte, op ws.OpCode, p []byte) []byte {
	return frameBytes(ws.Frame{Header: ws.Header{Fin: true, Rsv: rsv, OpCode: op, Length: int64(len(p))}, Payload: p})
}

func text(s string) []byte     { return raw(ws.OpText, true, []byte(s)) }
func binFrame(b []byte) []byte { return raw(ws.OpBinary, true, b) }
func ping(s string) []byte     { return raw(ws.OpPing, true, []byte(s)) }
func pong(s string) []byte     { return raw(ws.OpPong, true, []byte(s)) }

func closeFrame(body []byte) []byte { return raw(ws.OpClose, true, body) }

// at writes frames in one go; chopped in pieces of n bytes.
func at(frames ...[]byte) step { return step{raw: concat(frames...)} }
func chopped(n int, frames ...[]byte) step {
	return step{raw: concat(frames...), chop: n}
}

// framewise writes each frame on its own, with a pause between.
func framewise(frames ...[]byte) []step {
	steps := make([]step, len(frames))
	for i, f := range frames {
		steps[i] = step{raw: f, pause: time.Millisecond}
	}
	return steps
}

// threeWays is how Autobahn sends many of its cases: all frames in one
// write, frame by frame, and in one-byte chops.
func threeWays(ids [3]string, base ccase, frames ...[]byte) []ccase {
	out := make([]ccase, 3)
	for i, steps := range [][]step{{at(frames...)}, framewise(frames...), {chopped(1, frames...)}} {
		out[i] = base
		out[i].id = ids[i]
		out[i].steps = steps
	}
	return out
}

func texts(ss ...string) []msg {
	ms := make([]msg, len(ss))
	for i, s := range ss {
		ms[i] = msg{text: true, data: s}
	}
	return ms
}

func binaries(bs ...[]byte) []msg {
	ms := make([]msg, len(bs))
	for i, b := range bs {
		ms[i] = msg{data: string(b)}
	}
	return ms
}

// deflater compresses as a permessage-deflate server does (RFC 7692
// 7.2.1): a sync flush per message with its 4-byte tail removed, keeping
// the LZ77 window across messages unless told not to.
type deflater struct {
	buf      bytes.Buffer
	w        *flate.Writer
	takeover bool
}

func (d *deflater) frame(op ws.OpCode, p []byte) []byte {
	if d.w == nil || !d.takeover {
		d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	}
	d.buf.Reset()
	_, _ = d.w.Write(p)
	_ = d.w.Flush()
	body := bytes.TrimSuffix(d.buf.Bytes(), []byte{0, 0, 0xff, 0xff})
	return rsvFrame(ws.Rsv(true, false, false), op, body)
}
