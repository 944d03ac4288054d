package core

import (
	"fmt"
	"net"
	"testing"

	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/wstest"
)

// TestRotationFastConsumer: a rotation under a consumer that reads on the
// fast path (which stops during the rotation) delivers every message once.
func TestRotationFastConsumer(t *testing.T) {
	b := &broadcaster{}
	srv := wstest.New(t, func(c net.Conn) {
		b.add(c)
		_, _, _ = wsutil.ReadClientData(c)
	})
	c := open(t, Options{URL: srv.URL})
	f := newFastConsumer(t, c)
	f.next(EventOpen)
	const n = 4000
	b.await(t, 1)
	go b.run(n, 2000)
	var seqs []int
	for len(seqs) < n {
		ev := f.next(EventText)
		var seq int
		fmt.Sscanf(string(ev.Data), `{"seq":%d}`, &seq)
		seqs = append(seqs, seq)
		if len(seqs) == 1000 {
			if err := c.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("message %d is seq %d (stats %v)", i, s, c.Stats())
		}
	}
}
