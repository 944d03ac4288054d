package core

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

// openObserved opens a client observed by a new hub, attached before the
// client starts.
func openObserved(t *testing.T, o Options) (*Client, *Hub, uint32) {
	t.Helper()
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub()
	id, err := hub.Attach(c, false)
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() {
		c.Abort(waitLong)
		hub.Close()
	})
	return c, hub, id
}

// drainHub takes every event the hub has now, acknowledging each batch.
func drainHub(h *Hub) []Event {
	var out []Event
	dst, src := make([]Event, 64), make([]uint32, 64)
	for {
		n, _, err := h.Poll(dst, src, 1<<20, 64, 0)
		if err != nil || n == 0 {
			return out
		}
		out = append(out, dst[:n]...)
		for _, id := range src[:n] {
			h.Ack(id)
		}
	}
}

// answerHeaders answers c's header requests from hub with pairs(req)
// until stop is called.
func answerHeaders(t *testing.T, c *Client, hub *Hub, pairs func(req int) [][2]string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dst, src := make([]Event, 16), make([]uint32, 16)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, _ := hub.Poll(dst, src, 1<<20, 16, 20*time.Millisecond)
			for i := range n {
				if dst[i].Kind == EventHeaders {
					if p := pairs(dst[i].Runes); p != nil {
						_ = c.ProvideHeaders(dst[i].Runes, p, "")
					} else {
						_ = c.ProvideHeaders(dst[i].Runes, nil, "no headers for this attempt")
					}
				}
				hub.Ack(src[i])
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// TestHubObservesLifecycleAsItHappens: an observer sees Opened,
// Disconnected, Reconnecting and Closed without anyone polling the client,
// while the messages stay in the client's queue.
func TestHubObservesLifecycleAsItHappens(t *testing.T) {
	srv := wstest.NewRaw(t, helloAndDrop)
	c, hub, id := openObserved(t, Options{URL: srv.URL, Reconnect: &fast})
	seen := map[EventKind]bool{}
	deadline := time.Now().Add(waitLong)
	dst, src := make([]Event, 16), make([]uint32, 16)
	for !(seen[EventOpen] && seen[EventDisconnected] && seen[EventReconnecting]) && time.Now().Before(deadline) {
		n, _, err := hub.Poll(dst, src, 1<<20, 16, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if src[i] != id {
				t.Fatalf("member %d, want %d", src[i], id)
			}
			if dst[i].isMessage() {
				t.Fatal("an observer got a message")
			}
			seen[dst[i].Kind] = true
			hub.Ack(src[i])
		}
	}
	if !seen[EventReconnecting] {
		t.Fatalf("saw %v", seen)
	}
	if ev := next(t, c); ev.Kind != EventOpen {
		t.Fatalf("the client's own stream starts with %v", ev.Kind)
	}
}

// TestHubConsumersTakeTurns: a member that floods gets at most perMember
// events per poll, and no more until Ack, so another member's message
// waits one batch at most; Ack releases the member's bound.
func TestHubConsumersTakeTurns(t *testing.T) {
	flood := wstest.New(t, func(c net.Conn) {
		for range 10_000 {
			if wsutil.WriteServerMessage(c, ws.OpText, []byte("f")) != nil {
				return
			}
		}
		time.Sleep(2 * time.Second)
	})
	quiet := wstest.New(t, func(c net.Conn) {
		time.Sleep(100 * time.Millisecond)
		_ = wsutil.WriteServerMessage(c, ws.OpText, []byte("q"))
		time.Sleep(2 * time.Second)
	})
	hub := NewHub()
	defer hub.Close()
	var ids [2]uint32
	for i, url := range []string{flood.URL, quiet.URL} {
		c, err := NewClient(Options{URL: url, MaxQueue: 64})
		if err != nil {
			t.Fatal(err)
		}
		if ids[i], err = hub.Attach(c, true); err != nil {
			t.Fatal(err)
		}
		c.Start()
		defer c.Abort(waitLong)
	}
	dst, src := make([]Event, 256), make([]uint32, 256)
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		n, _, err := hub.Poll(dst, src, 1<<20, 32, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		per := map[uint32]int{}
		for i := range n {
			per[src[i]]++
			if string(dst[i].Data) == "q" {
				return
			}
		}
		for id, k := range per {
			if k > 32 {
				t.Fatalf("member %d got %d events in one poll", id, k)
			}
			hub.Ack(id)
		}
	}
	t.Fatal("the quiet member's message never came")
}

// countingSignal counts the calls a hub makes to its signal.
type countingSignal struct{ sets, clears int }

func (s *countingSignal) Set()   { s.sets++ }
func (s *countingSignal) Clear() { s.clears++ }

// TestHubHandsOutInArrivalOrder: a member that got an event while its
// batch was out comes before a member whose event came later, and the
// signal is touched only when the hub goes from empty to not and back.
func TestHubHandsOutInArrivalOrder(t *testing.T) {
	hub := NewHub()
	defer hub.Close()
	sig := &countingSignal{}
	hub.SetSignal(sig)
	var ms [2]*member
	for i := range ms {
		c, err := NewClient(Options{URL: "ws://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		id, err := hub.Attach(c, false)
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = hub.members[id]
	}
	a, b := ms[0], ms[1]
	dst, src := make([]Event, 8), make([]uint32, 8)
	a.control(Event{Kind: EventWarning, Data: []byte("a1")})
	if n, _, _ := hub.Poll(dst, src, 1<<20, 8, 0); n != 1 || string(dst[0].Data) != "a1" {
		t.Fatalf("first poll: %d events %v", n, dst[:n])
	}
	a.control(Event{Kind: EventWarning, Data: []byte("a2")}) // while a's batch is out
	b.control(Event{Kind: EventWarning, Data: []byte("b1")})
	b.control(Event{Kind: EventWarning, Data: []byte("b2")})
	hub.Ack(a.id)
	n, _, _ := hub.Poll(dst, src, 1<<20, 8, 0)
	var got []string
	for _, ev := range dst[:n] {
		got = append(got, string(ev.Data))
	}
	if want := []string{"a2", "b1", "b2"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if sig.sets != 2 || sig.clears != 3 { // SetSignal's clear, then set and cleared by each poll
		t.Fatalf("signal set %d and cleared %d times, want 2 and 3", sig.sets, sig.clears)
	}
}
