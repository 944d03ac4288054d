package core

import (
	"bytes"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

// waitFDs waits until one of fds is readable or d passes (select(2)).
func waitFDs(t *testing.T, d time.Duration, fds ...int) {
	t.Helper()
	var set syscall.FdSet
	top := 0
	for _, fd := range fds {
		set.Bits[fd/64] |= 1 << (uint(fd) % 64)
		top = max(top, fd)
	}
	tv := syscall.NsecToTimeval(d.Nanoseconds())
	if _, err := syscall.Select(top+1, &set, nil, nil, &tv); err != nil && err != syscall.EINTR {
		t.Fatal(err)
	}
}

// pipeSignal is a Signal over a pipe, as a test's stand-in for the C API's
// eventfd: readable exactly while events wait.
type pipeSignal struct{ r, w int }

func newPipeSignal(t *testing.T) *pipeSignal {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return &pipeSignal{fds[0], fds[1]}
}

func (p *pipeSignal) Set() { _, _ = syscall.Write(p.w, []byte{1}) }
func (p *pipeSignal) Clear() {
	var b [64]byte
	for {
		if n, _ := syscall.Read(p.r, b[:]); n <= 0 {
			return
		}
	}
}

// fastConsumer is a consumer on the fast path: PollFast, and between calls
// a wait on the connection's socket (or a short sleep: the reader has it).
type fastConsumer struct {
	t       *testing.T
	c       *Client
	pending []Event
	fds     map[int]int
	signal  *pipeSignal
}

func newFastConsumer(t *testing.T, c *Client) *fastConsumer {
	f := &fastConsumer{t: t, c: c, fds: map[int]int{}, signal: newPipeSignal(t)}
	c.SetSignal(f.signal)
	t.Cleanup(func() {
		for _, fd := range f.fds {
			syscall.Close(fd)
		}
	})
	return f
}

// next is the next event of kind; events of other kinds before it are skipped.
func (f *fastConsumer) next(kind EventKind) Event {
	f.t.Helper()
	dst := make([]Event, 16)
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		for len(f.pending) > 0 {
			ev := f.pending[0]
			f.pending = f.pending[1:]
			if ev.Kind == kind {
				return ev
			}
		}
		n, _, gen, err := f.c.PollFast(dst, 1<<20)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, ev := range dst[:n] {
			ev.Data = bytes.Clone(ev.Data)
			f.pending = append(f.pending, ev)
		}
		signal := f.signal.r
		switch {
		case n > 0:
		case gen == 0:
			waitFDs(f.t, 100*time.Millisecond, signal)
		default:
			fd, ok := f.fds[gen]
			if !ok {
				if fd, err = f.c.SocketFD(gen); err != nil {
					continue
				}
				f.fds[gen] = fd
			}
			waitFDs(f.t, 100*time.Millisecond, signal, fd)
		}
	}
	cn, _ := f.c.readableConn()
	if cn != nil {
		cn.turn.mu.Lock()
		st, parked, kicked := cn.turn.state, cn.turn.parked, cn.turn.kicked
		cn.turn.mu.Unlock()
		f.t.Logf("turn state %d parked %v kicked %v buffered %d queue ready %v stats %v", st, parked, kicked, cn.src.Buffered(), f.c.q.ready(), f.c.Stats())
	}
	f.t.Fatalf("no %v event", kind)
	return Event{}
}

// TestFastPathEcho: a consumer on the fast path gets every echo, in order,
// and reads most of them on its own thread (messages_fast), while the
// reader goroutine takes the socket back between its calls.
func TestFastPathEcho(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL})
	f := newFastConsumer(t, c)
	f.next(EventOpen)
	for i := range 300 {
		want := fmt.Sprintf("ping-%d", i)
		if err := c.Send([]byte(want), SendText, 0); err != nil {
			t.Fatal(err)
		}
		if ev := f.next(EventText); string(ev.Data) != want {
			t.Fatalf("got %q, want %q", ev.Data, want)
		}
	}
	t.Logf("%d of 300 through the fast path", c.Stats()[StatFastMessages])
	if fast := c.Stats()[StatFastMessages]; fast == 0 {
		t.Fatal("no message came through the fast path")
	}
}

// TestFastPathLeavesTheRestToTheReader: a frame larger than the buffer, a
// fragmented message and a server ping are read by the reader goroutine
// (or answered) and still reach the consumer in order; the connection's
// close frame ends it normally.
func TestFastPathLeavesTheRestToTheReader(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 3*readBufferSize)
	srv := wstest.New(t, func(c net.Conn) {
		_ = wsutil.WriteServerMessage(c, ws.OpText, []byte("small"))
		_ = wsutil.WriteServerMessage(c, ws.OpBinary, big)
		_ = ws.WriteFrame(c, ws.NewFrame(ws.OpText, false, []byte("frag-")))
		_ = ws.WriteFrame(c, ws.NewFrame(ws.OpPing, true, []byte("hb")))
		_ = ws.WriteFrame(c, ws.NewFrame(ws.OpContinuation, true, []byte("ment")))
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "bye")))
		time.Sleep(time.Second)
	})
	c := open(t, Options{URL: srv.URL})
	f := newFastConsumer(t, c)
	f.next(EventOpen)
	if ev := f.next(EventText); string(ev.Data) != "small" {
		t.Fatalf("first %q", ev.Data)
	}
	if ev := f.next(EventBinary); !bytes.Equal(ev.Data, big) {
		t.Fatalf("big: %d bytes", len(ev.Data))
	}
	if ev := f.next(EventText); string(ev.Data) != "frag-ment" {
		t.Fatalf("fragments %q", ev.Data)
	}
	if ev := f.next(EventClosed); ev.End.Code != 4001 || ev.End.Reason != "bye" || ev.End.ClosedBy != SideServer {
		t.Fatalf("end %+v", ev.End)
	}
	if c.Stats()[StatPingsReceived] != 1 {
		t.Fatal("the ping was not seen")
	}
}

// TestFastPathKeepsTheHeartbeat: a consumer that takes the turn and then
// stays away (busy elsewhere) leaves the socket to the reader goroutine,
// which answers the heartbeat: the connection stays alive.
func TestFastPathKeepsTheHeartbeat(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL, PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	newFastConsumer(t, c).next(EventOpen)
	dst := make([]Event, 4)
	_, _, _, _ = c.PollFast(dst, 1<<20) // took the turn and gave it back
	time.Sleep(600 * time.Millisecond)  // "busy": twelve ping intervals
	if st := c.State(); st != StateOpen || c.Stats()[StatPongsReceived] < 3 {
		t.Fatalf("state %v, %d pongs", st, c.Stats()[StatPongsReceived])
	}
}

// TestFastPathSeesAReset: a peer that resets the connection while the
// consumer waits on its socket ends it as a reset, not as a plain EOF (a
// wait that took the socket's pending error would lose it).
func TestFastPathSeesAReset(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) {
		_ = wsutil.WriteServerMessage(c, ws.OpText, []byte("last"))
		time.Sleep(200 * time.Millisecond)
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	c := open(t, Options{URL: srv.URL})
	f := newFastConsumer(t, c)
	f.next(EventOpen)
	if ev := f.next(EventText); string(ev.Data) != "last" {
		t.Fatalf("got %q", ev.Data)
	}
	if ev := f.next(EventClosed); ev.End.Err != CodeReset {
		t.Fatalf("end %+v", ev.End)
	}
}

// TestBusyPoll: with BusyPoll a fast poll keeps reading for that long: a
// reply that comes within it is returned by the same call, and a call that
// finds nothing returns after the spin, not before and not much after.
func TestBusyPoll(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL, BusyPoll: MaxBusyPoll})
	newFastConsumer(t, c).next(EventOpen)
	dst := make([]Event, 4)
	start := time.Now()
	n, _, _, err := c.PollFast(dst, 1<<20)
	if spun := time.Since(start); n != 0 || err != nil || spun < MaxBusyPoll || spun > waitLong {
		t.Fatalf("an empty spin: %d events, %v, after %v", n, err, spun)
	}
	first := 0 // replies that came within the spin of the call after the send
	for i := range 20 {
		if err := c.Send([]byte("x"), SendText, 0); err != nil {
			t.Fatal(err)
		}
		for call := 0; ; call++ {
			n, _, _, err := c.PollFast(dst, 1<<20)
			if err != nil || (n > 0 && string(dst[0].Data) != "x") || call > 1000 {
				t.Fatalf("reply %d: %d events, %v, call %d", i, n, err, call)
			}
			if n > 0 && call == 0 {
				first++
			}
			if n > 0 {
				break
			}
		}
	}
	if first == 0 {
		t.Fatal("no reply came within a spin")
	}
}
