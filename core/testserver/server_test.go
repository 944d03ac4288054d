package testserver

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steadyws/steadyws/core"
)

const wait = 5 * time.Second

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !s.Stop(wait) {
			t.Error("Stop left goroutines running")
		}
	})
	return s
}

func dial(t *testing.T, o core.Options) *core.Client {
	t.Helper()
	c, err := core.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort(wait) })
	return c
}

// next returns the next event of kind, skipping others.
func next(t *testing.T, c *core.Client, kind core.EventKind) core.Event {
	t.Helper()
	var ev [1]core.Event
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		n, _, err := c.Poll(ev[:], 64<<20, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 && ev[0].Kind == kind {
			return ev[0]
		}
	}
	t.Fatalf("no %v event", kind)
	return core.Event{}
}

func TestSendRecvAndClients(t *testing.T) {
	s := start(t)
	a := dial(t, core.Options{URL: s.URL()})
	next(t, a, core.EventOpen) // a is open first, so it has the lower id
	b := dial(t, core.Options{URL: s.URL()})
	next(t, b, core.EventOpen)
	ids := s.Clients()
	if len(ids) != 2 {
		t.Fatalf("clients %v", ids)
	}
	if err := s.Send(-1, []byte("to all"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ids[1], []byte{1, 2}, false); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, a, core.EventText); string(ev.Data) != "to all" {
		t.Fatalf("a got %q", ev.Data)
	}
	next(t, b, core.EventText)
	if ev := next(t, b, core.EventBinary); string(ev.Data) != "\x01\x02" {
		t.Fatalf("b got %q", ev.Data)
	}
	if err := a.Send([]byte("subscribe"), core.SendText, 0); err != nil {
		t.Fatal(err)
	}
	m, ok := s.Recv(wait)
	if !ok || string(m.Data) != "subscribe" || !m.Text || m.Client != ids[0] {
		t.Fatalf("recv %+v %v", m, ok)
	}
	if err := s.Send(999, nil, true); err == nil || !strings.Contains(err.Error(), "client id") {
		t.Fatalf("unknown client: %v", err)
	}
}

func TestResetAndClose(t *testing.T) {
	s := start(t)
	c := dial(t, core.Options{URL: s.URL()})
	next(t, c, core.EventOpen)
	if err := s.Reset(-1); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, core.EventClosed); ev.End.Err != core.CodeReset {
		t.Fatalf("after reset: %+v", ev)
	}
	c = dial(t, core.Options{URL: s.URL()})
	next(t, c, core.EventOpen)
	if err := s.Close(-1, 1001, "going away"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, core.EventClosed); ev.End.Code != 1001 || string(ev.Data) != "going away" {
		t.Fatalf("after close: %+v", ev)
	}
}

func TestRefuse(t *testing.T) {
	s := start(t)
	if err := s.Refuse(503, 2, 1); err != nil {
		t.Fatal(err)
	}
	c := dial(t, core.Options{URL: s.URL()})
	if ev := next(t, c, core.EventClosed); ev.End.Status != 503 || c.Err().RetryAfter != 2*time.Second {
		t.Fatalf("refused: %+v %v", ev, c.Err())
	}
	c = dial(t, core.Options{URL: s.URL()}) // times=1: the next one gets in
	next(t, c, core.EventOpen)
	if n := s.Counts(); n.Refused != 1 || n.Handshakes != 1 {
		t.Fatalf("counts %+v", n)
	}
	if err := s.Refuse(101, -1, -1); err == nil {
		t.Fatal("101 is not a refusal")
	}
}

func TestBlackholeIsDetectedByTheHeartbeat(t *testing.T) {
	s := start(t)
	c := dial(t, core.Options{URL: s.URL(), PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	next(t, c, core.EventOpen)
	s.Blackhole(5 * time.Second)
	start := time.Now()
	if ev := next(t, c, core.EventClosed); ev.End.Err != core.CodeTimeout {
		t.Fatalf("after blackhole: %+v", ev)
	}
	// Due within ping_interval + ping_timeout (0.3 s); the margin is for
	// the race detector on a loaded 2-core machine, where 1.7 s was seen.
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("dead peer noticed after %v", d)
	}
}

func TestFloodIsPacedByTheConsumer(t *testing.T) {
	s := start(t)
	c := dial(t, core.Options{URL: s.URL(), MaxQueue: 16})
	next(t, c, core.EventOpen)
	if err := s.Flood(-1, 1000, 200); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		ev := next(t, c, core.EventText)
		if len(ev.Data) != 200 || !strings.Contains(string(ev.Data), `"seq":`+strconv.Itoa(i)+`,`) {
			t.Fatalf("message %d: %s", i, ev.Data)
		}
	}
}

func TestStopEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Start(Options{MaxClients: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, core.Options{URL: s.URL()})
	next(t, c, core.EventOpen)
	s.Blackhole(time.Hour) // a handshake held in the black hole must not hold up Stop
	held := dial(t, core.Options{URL: s.URL()})
	_ = s.Flood(-1, 1<<30, 100)
	time.Sleep(50 * time.Millisecond)
	if !s.Stop(wait) {
		t.Fatal("goroutines still running")
	}
	next(t, c, core.EventClosed)
	next(t, held, core.EventClosed)
	if err := s.Send(-1, nil, true); err != ErrStopped {
		t.Fatalf("after stop: %v", err)
	}
	c.Abort(wait)
	held.Abort(wait)
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines, %d before", n, before)
	}
}
