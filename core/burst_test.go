package core

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

// TestBurstKeepsOrderAroundOtherFrames: small messages that arrive in one
// write with control frames, fragments, a binary and a large message among
// them are queued in order by the burst path and the frame-by-frame path
// together; a message with invalid UTF-8 in the middle of a burst ends the
// connection with 1007 after every message before it was delivered.
func TestBurstKeepsOrderAroundOtherFrames(t *testing.T) {
	big := bytes.Repeat([]byte("L"), 3*arenaMax)
	var wire bytes.Buffer
	want := []string{}
	text := func(s string) {
		_ = ws.WriteFrame(&wire, ws.NewTextFrame([]byte(s)))
		want = append(want, s)
	}
	for i := range 10 {
		text(fmt.Sprintf("a%d", i))
	}
	_ = ws.WriteFrame(&wire, ws.NewPingFrame([]byte("hb")))
	_ = ws.WriteFrame(&wire, ws.NewBinaryFrame([]byte{1, 2, 3}))
	want = append(want, "\x01\x02\x03")
	_ = ws.WriteFrame(&wire, ws.NewFrame(ws.OpText, false, []byte("frag-")))
	_ = ws.WriteFrame(&wire, ws.NewFrame(ws.OpContinuation, true, []byte("ment")))
	want = append(want, "frag-ment")
	_ = ws.WriteFrame(&wire, ws.NewTextFrame(big))
	want = append(want, string(big))
	text("b0")
	text("b1")
	_ = ws.WriteFrame(&wire, ws.NewTextFrame([]byte{'x', 0xff, 'y'})) // invalid UTF-8
	_ = ws.WriteFrame(&wire, ws.NewTextFrame([]byte("never")))
	srv := wstest.New(t, func(c net.Conn) {
		_, _ = c.Write(wire.Bytes())
		_, _, _ = wsutil.ReadClientData(c) // until the client closes
	})
	c := open(t, Options{URL: srv.URL})
	next(t, c) // open
	for i, w := range want {
		ev := next(t, c)
		if (ev.Kind != EventText && ev.Kind != EventBinary) || string(ev.Data) != w {
			t.Fatalf("message %d: %v %q, want %q", i, ev.Kind, ev.Data, w)
		}
	}
	for {
		ev := next(t, c)
		if ev.Kind == EventText || ev.Kind == EventBinary {
			t.Fatalf("a message after the invalid one: %q", ev.Data)
		}
		if ev.Kind == EventClosed {
			if ev.End.Code != 1007 {
				t.Fatalf("end %+v", ev.End)
			}
			break
		}
	}
	if got := c.Stats()[StatPingsReceived]; got != 1 {
		t.Fatalf("%d pings seen", got)
	}
}

// TestBurstObeysTheOverflowPolicy: a burst larger than the queue is
// queued under the policy, message by message: drop_newest keeps the
// first ones, drop_oldest the last ones, block all of them in order.
func TestBurstObeysTheOverflowPolicy(t *testing.T) {
	var wire bytes.Buffer
	for i := range 100 {
		_ = ws.WriteFrame(&wire, ws.NewTextFrame(fmt.Appendf(nil, "m%02d", i)))
	}
	for _, tc := range []struct {
		policy      Overflow
		first, last string
		count       int
	}{
		{OverflowDropNewest, "m00", "m07", 8},
		{OverflowDropOldest, "m92", "m99", 8},
		{OverflowBlock, "m00", "m99", 100},
	} {
		t.Run(fmt.Sprint(tc.policy), func(t *testing.T) {
			srv := wstest.New(t, func(c net.Conn) {
				_, _ = c.Write(wire.Bytes())
				_, _, _ = wsutil.ReadClientData(c)
			})
			c := open(t, Options{URL: srv.URL, MaxQueue: 8, Overflow: tc.policy})
			next(t, c) // open
			if tc.policy != OverflowBlock {
				waitForStat(t, c, StatMessagesIn, 100)
			}
			var got []string
			for len(got) < tc.count {
				if ev := next(t, c); ev.Kind == EventText {
					got = append(got, string(ev.Data))
				}
			}
			if got[0] != tc.first || got[len(got)-1] != tc.last {
				t.Fatalf("got %v", got)
			}
		})
	}
}
