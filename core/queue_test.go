package core

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

// flooder sends total binary messages of size bytes, message i starting
// with i, then waits for the client to go away.
func flooder(total, size int) func(c net.Conn) {
	return func(c net.Conn) {
		msg := make([]byte, size)
		for i := 0; i < total; i++ {
			binary.BigEndian.PutUint32(msg, uint32(i))
			if wsutil.WriteServerMessage(c, ws.OpBinary, msg) != nil {
				return
			}
		}
		wstest.Echo(c)
	}
}

// drain reads every waiting event, waiting up to settle for more.
func drain(t *testing.T, c *Client, settle time.Duration) (messages []int, warnings []Event) {
	t.Helper()
	events := make([]Event, 256)
	for {
		n, _, err := c.Poll(events, 1<<20, settle)
		if err != nil || n == 0 {
			return messages, warnings
		}
		for _, ev := range events[:n] {
			switch ev.Kind {
			case EventBinary:
				messages = append(messages, int(binary.BigEndian.Uint32(ev.Data)))
			case EventWarning:
				warnings = append(warnings, ev)
			}
		}
	}
}

// waitForStat polls the stats until stat reaches at least want.
func waitForStat(t *testing.T, c *Client, stat Stat, want int64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for c.Stats()[stat] < want {
		if time.Now().After(deadline) {
			t.Fatalf("stat %s stuck at %d, want %d", StatNames[stat], c.Stats()[stat], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOverflowPolicies(t *testing.T) {
	const total, max = 1000, 10
	for _, tc := range []struct {
		policy    Overflow
		wantFirst int
	}{
		{policy: OverflowDropOldest, wantFirst: total - max},
		{policy: OverflowDropNewest, wantFirst: 0},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			srv := wstest.New(t, flooder(total, 100))
			c := open(t, Options{URL: srv.URL, MaxQueue: int64(max), Overflow: tc.policy})
			mustOpen(t, c)
			// messages_in counts a message before the queue decides its
			// fate; the drop count settles only after the last one.
			waitForStat(t, c, StatDropped, total-max)
			got, warnings := drain(t, c, 50*time.Millisecond)
			if len(got) != max || got[0] != tc.wantFirst || got[max-1] != tc.wantFirst+max-1 {
				t.Fatalf("kept %v", got)
			}
			if d := c.Stats()[StatDropped]; d != total-max {
				t.Fatalf("dropped %d, want %d", d, total-max)
			}
			if len(warnings) == 0 || len(warnings) > 3 {
				t.Fatalf("%d warnings: want a few, rate-limited", len(warnings))
			}
		})
	}
}

func TestOverflowBlockLosesNothing(t *testing.T) {
	const total = 1000
	srv := wstest.New(t, flooder(total, 100))
	c := open(t, Options{URL: srv.URL, MaxQueue: 10})
	mustOpen(t, c)
	time.Sleep(50 * time.Millisecond)
	if d, _, _, _, _ := c.q.depth(); d > 10 {
		t.Fatalf("depth %d over max_queue", d)
	}
	var got []int
	for len(got) < total {
		more, _ := drain(t, c, time.Second)
		if len(more) == 0 {
			t.Fatalf("stalled after %d messages", len(got))
		}
		got = append(got, more...)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d is %d", i, v)
		}
	}
	if s := c.Stats(); s[StatDropped] != 0 || s[StatReaderBlockedMillis] <= 0 || s[StatQueueHighWater] != 10 {
		t.Fatalf("stats %v", s)
	}
}

func TestOverflowCloseFailsTheConnection(t *testing.T) {
	srv := wstest.New(t, flooder(100, 100))
	c := open(t, Options{URL: srv.URL, MaxQueue: 5, Overflow: OverflowClose})
	mustOpen(t, c)
	time.Sleep(100 * time.Millisecond) // the queue fills, nobody reads
	ev := nextOf(t, c, EventClosed)
	if ev.End.Err != CodeQueueFull || ev.End.Code != ClosePolicyViolation {
		t.Fatalf("got %+v", ev)
	}
}

func TestMaxQueueBytesBoundsTheQueue(t *testing.T) {
	srv := wstest.New(t, flooder(100, 100))
	c := open(t, Options{URL: srv.URL, MaxQueue: 1000, MaxQueueBytes: 1000})
	mustOpen(t, c)
	time.Sleep(100 * time.Millisecond)
	if d, b, _, _, _ := c.q.depth(); d > 10 || b > 1000 {
		t.Fatalf("depth %d messages, %d bytes: over max_queue_bytes", d, b)
	}
	_, warnings := drain(t, c, 50*time.Millisecond)
	if len(warnings) == 0 || warnings[0].Runes != WarnHighWater || !strings.Contains(string(warnings[0].Data), "80%") {
		t.Fatalf("warnings %+v, want a high-water warning", warnings)
	}
}

// TestCloseDoesNotHangOnAFullQueue: the reader waits for room, yet close
// still completes within close_timeout.
func TestCloseDoesNotHangOnAFullQueue(t *testing.T) {
	srv := wstest.New(t, flooder(10000, 1000))
	c := open(t, Options{URL: srv.URL, MaxQueue: 2, CloseTimeout: 500 * time.Millisecond})
	mustOpen(t, c)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_ = c.Close(CloseNormal, "")
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("close hung")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("close took %v", took)
	}
}

func TestParseOverflow(t *testing.T) {
	for i, name := range overflowNames {
		if o, err := ParseOverflow(name); err != nil || int(o) != i {
			t.Errorf("%s: %v %v", name, o, err)
		}
	}
	if _, err := ParseOverflow("drop_all"); CodeOf(err) != CodeInvalidArgument {
		t.Errorf("bad name accepted")
	}
}

// fill queues n messages of size bytes, applying the policy.
func fill(q *queue, n, size int) {
	data := make([]byte, size)
	for range n {
		_, _, _ = q.tryPut(Event{Kind: EventBinary, Data: data})
	}
}

// TestDropOldestWithALifecycleEventAtTheHead: an event that waits before
// the messages stays first, and drop_oldest keeps the freshest messages.
func TestDropOldestWithALifecycleEventAtTheHead(t *testing.T) {
	q := newQueue(16, 1<<30, OverflowDropOldest)
	q.putEvent(Event{Kind: EventOpen, Runes: 1})
	for i := range 1000 {
		_, _, _ = q.tryPut(Event{Kind: EventText, Data: []byte{byte(i % 256)}, Runes: 1})
	}
	dst := make([]Event, 64)
	n, _, _ := q.take(dst, 1<<20, 0)
	var kinds []EventKind
	for _, ev := range dst[:n] {
		kinds = append(kinds, ev.Kind)
	}
	if kinds[0] != EventOpen || n < 17 || dst[n-1].Kind != EventText || dst[n-1].Data[0] != byte(999%256) {
		t.Fatalf("took %v", kinds)
	}
	var kept []byte
	for _, ev := range dst[:n] {
		if ev.isMessage() {
			kept = append(kept, ev.Data[0])
		}
	}
	if len(kept) != 16 || kept[0] != byte((1000-16)%256) {
		t.Fatalf("kept %v, want the last 16", kept)
	}
}

// TestWarningsAreCoalescedAndBounded: a million drops with nobody reading
// leave one warning waiting (its count growing), not a million.
func TestWarningsAreCoalescedAndBounded(t *testing.T) {
	q := newQueue(4, 1<<30, OverflowDropNewest)
	fill(q, 1_000_000, 1)
	q.mu.Lock()
	waiting := len(q.life) - q.lifeHead
	q.mu.Unlock()
	if waiting > 2 {
		t.Fatalf("%d lifecycle events waiting after 1M drops", waiting)
	}
	dst := make([]Event, 16)
	n, _, _ := q.take(dst, 1<<20, 0)
	var drops int64
	for _, ev := range dst[:n] {
		if ev.Kind == EventWarning && ev.Runes == WarnDrops {
			drops += ev.Count
		}
	}
	if drops != 1_000_000-4 {
		t.Fatalf("the warnings count %d drops, want %d", drops, 1_000_000-4)
	}
}

// TestLifecycleEventsAreBounded: a consumer that never reads does not make
// the lifecycle list grow without end.
func TestLifecycleEventsAreBounded(t *testing.T) {
	q := newQueue(4, 1<<30, OverflowBlock)
	for i := range 10 * maxLifecycle {
		q.putEvent(Event{Kind: EventReconnecting, Runes: i})
	}
	q.putEvent(End{Code: CloseNormal}.event(EventClosed))
	_, _, _, _, lost := q.depth()
	q.mu.Lock()
	waiting, last := len(q.life)-q.lifeHead, q.life[len(q.life)-1].ev.Kind
	q.mu.Unlock()
	if waiting > maxLifecycle || last != EventClosed || lost != int64(10*maxLifecycle+1-waiting) {
		t.Fatalf("%d waiting, last %v, %d lost", waiting, last, lost)
	}
}

// TestTheConsumersBatchCountsUntilItComesBack: what a poll handed out
// still counts against the bounds, so the engine's queue and the consumer's
// batch together stay within them; the next poll releases it.
func TestTheConsumersBatchCountsUntilItComesBack(t *testing.T) {
	q := newQueue(10, 1000, OverflowBlock)
	fill(q, 10, 50)
	dst := make([]Event, 10)
	if n, _, _ := q.take(dst, 1<<20, 0); n != 10 {
		t.Fatalf("took %d", n)
	}
	if _, wait, _ := q.tryPut(Event{Kind: EventBinary, Data: make([]byte, 50)}); !wait {
		t.Fatal("room in the queue while the consumer holds the whole bound")
	}
	if messages, bytes, _, _, _ := q.depth(); messages != 10 || bytes != 500 {
		t.Fatalf("depth %d messages, %d bytes: the batch is not counted", messages, bytes)
	}
	q.take(dst, 1<<20, 0) // the consumer is back: its batch is released
	if _, wait, _ := q.tryPut(Event{Kind: EventBinary, Data: make([]byte, 50)}); wait {
		t.Fatal("no room after the consumer came back")
	}
}

// BenchmarkDropOldestWithEventAtHead: O(1) per message at any max_queue,
// even with a lifecycle event waiting at the head (0.1.0: 64 us per
// message at 16,384, 217 us at 65,536).
func BenchmarkDropOldestWithEventAtHead(b *testing.B) {
	for _, max := range []int{16, 16_384, 65_536} {
		b.Run(fmt.Sprint(max), func(b *testing.B) {
			q := newQueue(max, 1<<40, OverflowDropOldest)
			q.putEvent(Event{Kind: EventOpen})
			fill(q, max, 8)
			b.ResetTimer()
			fill(q, b.N, 8)
		})
	}
}
