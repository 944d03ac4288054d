package core

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

var fast = Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 2}

// upgradeThen upgrades c and runs f; it is the body of raw test servers.
func upgradeThen(c net.Conn, f func()) {
	if _, err := ws.Upgrade(c); err == nil {
		f()
	}
}

// hello sends "hello-i" and drops the connection without a close frame.
func helloAndDrop(i int, c net.Conn) {
	upgradeThen(c, func() { _ = wsutil.WriteServerMessage(c, ws.OpText, fmt.Appendf(nil, "hello-%d", i)) })
}

func TestReconnectsAfterTheConnectionIsLost(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	c := open(t, Options{URL: srv.URL, Reconnect: &fast})
	for i := 0; i < 3; i++ {
		mustOpen(t, c)
		if ev := next(t, c); string(ev.Data) != fmt.Sprintf("hello-%d", i) {
			t.Fatalf("got %q", ev.Data)
		}
		if ev := next(t, c); ev.Kind != EventDisconnected || ev.End.Code != CloseAbnormal {
			t.Fatalf("got %+v, want disconnected", ev)
		}
		if ev := next(t, c); ev.Kind != EventReconnecting || ev.Runes != i+1 || ev.Delay < fast.Min {
			t.Fatalf("got %+v, want attempt %d after at least min", ev, i+1)
		}
	}
	if s := c.Stats(); s[StatReconnects] < 2 || s[StatConnects] < 3 {
		t.Fatalf("stats %v", s)
	}
}

// TestAcceptThenDropIsNoTightLoop: a server that accepts and drops at once
// never resets the schedule, so the delays grow to Max.
func TestAcceptThenDropIsNoTightLoop(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	c := open(t, Options{URL: srv.URL, Reconnect: &fast})
	var delays []time.Duration
	for len(delays) < 5 {
		if ev := next(t, c); ev.Kind == EventReconnecting {
			delays = append(delays, ev.Delay)
		}
	}
	want := []time.Duration{50, 100, 200, 200, 200}
	for i, d := range delays {
		if d != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", delays, want)
		}
	}
}

func TestHealthyConnectionRetriesAtOnce(t *testing.T) {
	srv := wstest.NewRaw(t, func(i int, c net.Conn) {
		upgradeThen(c, func() { time.Sleep(MinHealthyAfter + 100*time.Millisecond) })
	})
	c := open(t, Options{URL: srv.URL, Reconnect: &fast, HealthyAfter: MinHealthyAfter})
	for i := 0; i < 2; i++ {
		if ev := nextOf(t, c, EventReconnecting); ev.Delay != 0 || ev.Runes != 1 {
			t.Fatalf("after a healthy connection: %+v, want attempt 1 at once", ev)
		}
	}
}

func TestFatalStatusEndsTheClient(t *testing.T) {
	srv := wstest.NewRaw(t, func(i int, c net.Conn) {
		if i == 0 {
			helloAndDrop(i, c)
			return
		}
		wstest.Refuse(c, http.StatusForbidden, "")
	})
	c := open(t, Options{URL: srv.URL, Reconnect: &fast})
	ev := nextOf(t, c, EventClosed)
	if ev.End.Err != CodeHandshake || ev.End.Status != 403 {
		t.Fatalf("got %+v", ev)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	srv := wstest.NewRaw(t, func(i int, c net.Conn) {
		if i == 1 {
			wstest.Refuse(c, http.StatusServiceUnavailable, "Retry-After: 1\r\n")
			return
		}
		helloAndDrop(i, c)
	})
	c := open(t, Options{URL: srv.URL, Reconnect: &fast})
	nextOf(t, c, EventReconnecting)
	ev := nextOf(t, c, EventReconnecting)
	if ev.Delay < time.Second || ev.End.Err != CodeHandshake {
		t.Fatalf("after a 503 with Retry-After: 1: %+v", ev)
	}
}

func TestMaxAttemptsEndsWithTheLastError(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	b := fast
	b.MaxAttempts = 3
	c := open(t, Options{URL: srv.URL, Reconnect: &b})
	mustOpen(t, c)
	srv.Close() // from now on: refused
	attempts := 0
	for {
		ev := next(t, c)
		if ev.Kind == EventReconnecting {
			attempts++
		}
		if ev.Kind == EventClosed {
			if attempts != 3 || ev.End.Err != CodeRefused {
				t.Fatalf("attempts %d, end %+v", attempts, ev)
			}
			return
		}
	}
}

func TestCloseDuringReconnectWaitReturnsAtOnce(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	c, hub, _ := openObserved(t, Options{URL: srv.URL, Reconnect: &Backoff{Min: 30 * time.Second, Max: 30 * time.Second}, HeaderRequests: true})
	nextOf(t, c, EventReconnecting)
	start := time.Now()
	_ = c.Close(CloseNormal, "")
	<-c.Done()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("close took %v", took)
	}
	for _, ev := range drainHub(hub) {
		if ev.Kind == EventHeaders {
			t.Fatal("asked for headers (about to dial) after Close")
		}
	}
}

// TestHeaderRequestsComeBeforeEveryReconnect: with HeaderRequests, every
// reconnect attempt asks the hub's observer for fresh headers and uses its
// answer; the first attempt uses Options.Header.
func TestHeaderRequestsComeBeforeEveryReconnect(t *testing.T) {
	got := make(chan string, 10)
	srv := wstest.NewRaw(t, func(i int, c net.Conn) {
		u := ws.Upgrader{OnHeader: func(k, v []byte) error {
			if string(k) == "X-Sig" {
				got <- string(v)
			}
			return nil
		}}
		if _, err := u.Upgrade(c); err == nil {
			_ = wsutil.WriteServerMessage(c, ws.OpText, []byte("x"))
		}
	})
	c, hub, _ := openObserved(t, Options{URL: srv.URL, Reconnect: &fast, Header: http.Header{"X-Sig": {"first"}}, HeaderRequests: true})
	stop := answerHeaders(t, c, hub, func(req int) [][2]string { return [][2]string{{"X-Sig", fmt.Sprint("fresh-", req)}} })
	defer stop()
	for _, want := range []string{"first", "fresh-1", "fresh-2"} {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("header %q, want %q", v, want)
			}
		case <-time.After(waitLong):
			t.Fatal("no handshake")
		}
	}
}

// TestHeaderRequestRefusals: invalid or missing headers fail the attempt
// (not the client), and the schedule goes on.
func TestHeaderRequestRefusals(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	c, hub, _ := openObserved(t, Options{URL: srv.URL, Reconnect: &fast, HeaderRequests: true})
	stop := answerHeaders(t, c, hub, func(req int) [][2]string {
		if req == 1 {
			return [][2]string{{"Host", "evil"}}
		}
		return nil
	})
	defer stop()
	ev := nextOf(t, c, EventReconnecting) // after the first connection
	if ev = nextOf(t, c, EventReconnecting); !strings.Contains(string(ev.Data), "Host") {
		t.Fatalf("attempt with a reserved header: %q", ev.Data)
	}
	if err := c.ProvideHeaders(99, nil, ""); CodeOf(err) != CodeInvalidArgument {
		t.Fatalf("an unknown request was answered: %v", err)
	}
}

func TestSetBackoffOnALiveClient(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	c := open(t, Options{URL: srv.URL, Reconnect: &fast})
	nextOf(t, c, EventReconnecting)
	if err := c.SetBackoff(Backoff{Min: 70 * time.Millisecond, Max: 70 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, c, EventReconnecting); ev.Delay != 70*time.Millisecond {
		t.Fatalf("delay %v after SetBackoff", ev.Delay)
	}
	if err := c.SetBackoff(Backoff{Min: time.Second, Max: time.Millisecond}); CodeOf(err) != CodeInvalidArgument {
		t.Fatalf("bad policy accepted: %v", err)
	}
}

// TestDeadPeerIsDetected: a peer that stops answering (no pong, no frame)
// is declared dead within ping_interval + ping_timeout.
func TestDeadPeerIsDetected(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) { time.Sleep(3 * time.Second) })
	c := open(t, Options{URL: srv.URL, PingInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	mustOpen(t, c)
	start := time.Now()
	ev := nextOf(t, c, EventClosed)
	if took := time.Since(start); ev.End.Err != CodeTimeout || took > 600*time.Millisecond {
		t.Fatalf("end %+v after %v", ev, took)
	}
	if s := c.Stats(); s[StatPingsSent] != 1 || s[StatPingsAfterDeath] != 0 {
		t.Fatalf("stats %v", s)
	}
}

func TestHealthyPeerMeasuresRoundTrip(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL, PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	mustOpen(t, c)
	time.Sleep(400 * time.Millisecond)
	s := c.Stats()
	if c.State() != StateOpen || s[StatPingsSent] < 3 || s[StatPongsReceived] < 3 || s[StatLastRTTMicros] <= 0 {
		t.Fatalf("state %v stats %v", c.State(), s)
	}
}

// TestSlowConsumerIsNotADeadPeer: with the queue full the reader stops
// reading, so pongs go unread; that must not count against the peer.
func TestSlowConsumerIsNotADeadPeer(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) {
		for i := 0; i < 50; i++ {
			_ = wsutil.WriteServerMessage(c, ws.OpBinary, make([]byte, 100))
		}
		wstest.Echo(c) // answers our pings
	})
	c := open(t, Options{URL: srv.URL, MaxQueue: 1, PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	mustOpen(t, c)
	time.Sleep(500 * time.Millisecond) // ten heartbeat periods without consuming
	for i := 0; i < 50; i++ {
		if ev := next(t, c); ev.Kind != EventBinary {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if c.State() != StateOpen {
		t.Fatalf("state %v", c.State())
	}
}
