package core

import (
	"fmt"
	"time"
)

// watchSilence is the staleness watch of a connection with MaxSilence:
// "connected, but no data" -- the socket is healthy and pings are
// answered, but the venue stopped sending, which no ping timeout can see.
// When no data message arrived for MaxSilence, it ends the connection with
// a "stale" error, and the reconnect policy runs. The clock starts at the
// open and restarts with every data message; while the reader waits for
// room in a full queue it stops (the silence is the consumer's, not the
// venue's) and restarts when the reader goes on. It ends with the
// connection: it waits on nothing but cn.dead and its own timer.
func (c *Client) watchSilence(cn *conn) {
	limit := c.s.MaxSilence
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		select {
		case <-cn.dead:
			return
		case <-t.C:
		}
		if cn.readerBlocked.Load() {
			t.Reset(limit)
			continue
		}
		if left := time.Until(c.silentSince(cn).Add(limit)); left > 0 {
			t.Reset(left)
			continue
		}
		c.stats.add(StatStale, 1)
		cn.die(&Error{Code: CodeTimeout, Op: "stale", Err: fmt.Errorf("no data message for %v (max_silence)", limit)})
		return
	}
}

// silentSince is when the current silence began: the last data message,
// the open, or the end of the reader's last wait for room, whichever came
// last.
func (c *Client) silentSince(cn *conn) time.Time {
	since := cn.openedAt
	for _, ns := range []int64{c.lastData.Load(), cn.unblockedAt.Load()} {
		if t := time.Unix(0, ns); ns != 0 && t.After(since) {
			since = t
		}
	}
	return since
}
