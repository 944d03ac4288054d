package core

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

// broadcaster sends one numbered feed to every connection it has, at
// about rate messages a second, as a venue's stream does.
type broadcaster struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (b *broadcaster) add(c net.Conn) {
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
}

// await waits until n connections joined (their handlers run after the
// client saw the handshake complete).
func (b *broadcaster) await(t *testing.T, n int) {
	t.Helper()
	for end := time.Now().Add(waitLong); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		joined := len(b.conns)
		b.mu.Unlock()
		if joined >= n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d of %d connections joined the feed", joined, n)
		}
	}
}

func (b *broadcaster) run(n, rate int) {
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		b.mu.Lock()
		for _, c := range b.conns {
			_ = wsutil.WriteServerMessage(c, ws.OpText, fmt.Appendf(nil, `{"seq":%d}`, i))
		}
		b.mu.Unlock()
	}
}

// pollSeqs polls c until n feed messages came (or waitLong passed): their
// seqs and the kinds of the other events; during(len) runs after each poll.
func pollSeqs(t *testing.T, c *Client, n int, during func(got int)) (seqs []int, kinds []EventKind) {
	t.Helper()
	dst := make([]Event, 256)
	deadline := time.Now().Add(waitLong)
	for len(seqs) < n && time.Now().Before(deadline) {
		k, _, err := c.Poll(dst, 1<<20, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range dst[:k] {
			if !ev.isMessage() {
				kinds = append(kinds, ev.Kind)
				continue
			}
			var seq int
			fmt.Sscanf(string(ev.Data), `{"seq":%d}`, &seq)
			seqs = append(seqs, seq)
		}
		during(len(seqs))
	}
	return seqs, kinds
}

// checkSeqs fails unless seqs are 0..n-1, each once, in order.
func checkSeqs(t *testing.T, seqs []int, n int, kinds []EventKind) {
	t.Helper()
	for i, s := range seqs {
		if s != i {
			t.Fatalf("message %d is seq %d (events %v)", i, s, kinds)
		}
	}
	if len(seqs) != n {
		t.Fatalf("%d of %d messages (events %v)", len(seqs), n, kinds)
	}
}

// TestRotationDeliversEverySequenceOnce: a rotation in the middle of a
// 2,000 msg/s feed delivers every message once, in order.
func TestRotationDeliversEverySequenceOnce(t *testing.T) {
	b := &broadcaster{}
	srv := wstest.New(t, func(c net.Conn) {
		b.add(c)
		_, _, _ = wsutil.ReadClientData(c) // until the client closes
	})
	c := open(t, Options{URL: srv.URL})
	if ev := next(t, c); ev.Kind != EventOpen {
		t.Fatalf("got %+v", ev)
	}
	const n = 4000
	b.await(t, 1)
	go b.run(n, 2000)
	rotated := false
	seqs, kinds := pollSeqs(t, c, n, func(got int) {
		if !rotated && got > 1000 {
			if err := c.Rotate(); err != nil {
				t.Error(err)
			}
			rotated = true
		}
	})
	checkSeqs(t, seqs, n, kinds)
	st := c.Stats()
	t.Logf("events %v rotations %d dupes %d", kinds, st[StatRotations], st[StatDuplicatesDropped])
	if st[StatRotations] != 1 {
		t.Fatalf("rotations %d", st[StatRotations])
	}
}

// TestRotationSurvivesTheOldConnectionEndingFirst: the venue closes the
// old connection (1001) while the new one is open: the new one takes over
// at once -- no EventDisconnected, no lost message.
func TestRotationSurvivesTheOldConnectionEndingFirst(t *testing.T) {
	b := &broadcaster{}
	second := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	count := 0
	srv := wstest.New(t, func(c net.Conn) {
		mu.Lock()
		count++
		first := count == 1
		mu.Unlock()
		b.add(c)
		if !first {
			once.Do(func() { close(second) })
			_, _, _ = wsutil.ReadClientData(c)
			return
		}
		<-second
		time.Sleep(20 * time.Millisecond)
		b.mu.Lock() // no feed message is half written when the close frame goes
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(1001, "expired")))
		b.mu.Unlock()
		_, _, _ = wsutil.ReadClientData(c)
	})
	c := open(t, Options{URL: srv.URL})
	next(t, c)
	const n = 3000
	b.await(t, 1)
	go b.run(n, 2000)
	seqs, kinds := pollSeqs(t, c, n, func(got int) {
		if got >= 500 && c.Stats()[StatConnects] == 1 {
			_ = c.Rotate()
		}
	})
	checkSeqs(t, seqs, n, kinds)
	for _, k := range kinds {
		if k == EventDisconnected || k == EventReconnecting {
			t.Fatalf("the old connection's end was reported: %v", kinds)
		}
	}
	if c.State() != StateOpen {
		t.Fatalf("state %v, events %v", c.State(), kinds)
	}
}

// TestCloseDuringARotation: Close while the new connection is open and the
// old one still delivers ends both, and the client, cleanly.
func TestCloseDuringARotation(t *testing.T) {
	b := &broadcaster{}
	srv := wstest.New(t, func(c net.Conn) {
		b.add(c)
		_, _, _ = wsutil.ReadClientData(c)
	})
	c := open(t, Options{URL: srv.URL})
	next(t, c)
	b.await(t, 1)
	go b.run(400, 2000)
	time.Sleep(50 * time.Millisecond)
	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(waitLong); c.Stats()[StatConnects] < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the rotation did not open")
		}
	}
	if err := c.Close(1000, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not end")
	}
	if st := c.State(); st != StateClosed {
		t.Fatalf("state %v", st)
	}
}
