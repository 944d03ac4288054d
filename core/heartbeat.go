package core

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/gobwas/ws"
)

var errPingTimeout = errors.New("ping timeout")

// heartbeat is the connection's keepalive goroutine. It ends with the
// connection on every path, since it waits on nothing but cn.dead and its
// own timer. Every PingInterval it sends a ping (RFC 6455 5.5.2); if no
// frame at all arrives within PingTimeout after it, the peer is declared
// dead. One timer serves both deadlines, so with the default interval equal
// to the timeout a connection costs one wake-up per interval: the verdict on
// the last ping and the next ping.
func (c *Client) heartbeat(cn *conn) {
	h := pulse{c: c, cn: cn, t: time.NewTimer(c.s.PingInterval), nextPing: time.Now().Add(c.s.PingInterval)}
	defer h.t.Stop()
	for h.sleep() {
		now := time.Now()
		if !h.judge(now) {
			cn.die(&Error{Code: CodeTimeout, Op: "heartbeat", Err: errPingTimeout})
			return
		}
		if !now.Before(h.nextPing) && !h.ping(now) {
			return
		}
	}
}

// pulse is the heartbeat's state; only its goroutine touches it.
type pulse struct {
	c        *Client
	cn       *conn
	t        *time.Timer
	nextPing time.Time
	pending  bool      // a ping waits for a sign of life
	deadline time.Time // when the pending ping's peer is declared dead
	frames   uint64    // frames read when it was sent
}

// sleep waits for the next deadline; false once the connection is dead.
func (h *pulse) sleep() bool {
	wake := h.nextPing
	if h.pending && h.deadline.Before(wake) {
		wake = h.deadline
	}
	h.t.Reset(max(time.Until(h.onGrid(wake)), 0))
	select {
	case <-h.cn.dead:
		return false
	case <-h.t.C:
		return !h.cn.isDead()
	}
}

// maxGrid bounds the grid the heartbeat's wake-ups fall on (see onGrid).
const maxGrid = 100 * time.Millisecond

// onGrid moves a wake-up to the next point of a grid shared by every
// connection with the same interval: their timers fire together, and one
// thread wakes for all of them -- 10,000 idle connections cost a few
// wake-ups a second instead of 500. The grid is at most 1/64 of the
// interval and the timeout (and maxGrid), so pings and verdicts come at
// most that late.
func (h *pulse) onGrid(t time.Time) time.Time {
	grid := min(maxGrid, h.c.s.PingInterval/64)
	if timeout := h.c.s.PingTimeout; timeout > 0 {
		grid = min(grid, timeout/64)
	}
	if grid <= time.Millisecond {
		return t
	}
	if aligned := t.Truncate(grid); aligned.Before(t) {
		return aligned.Add(grid)
	}
	return t
}

// judge decides on the pending ping: alive once any frame came after it.
// While our reader is blocked on a full queue it cannot see frames, so the
// deadline moves: a slow consumer never makes a healthy peer look dead.
func (h *pulse) judge(now time.Time) bool {
	timeout := h.c.s.PingTimeout
	switch {
	case !h.pending:
		return true
	case h.cn.frames.Load() > h.frames:
		h.pending = false
		return true
	case timeout <= 0 || now.Before(h.deadline):
		return true
	case h.cn.readerBlocked.Load():
		h.deadline = now.Add(timeout)
		return true
	}
	if unblocked := time.Unix(0, h.cn.unblockedAt.Load()); unblocked.Add(timeout).After(now) {
		h.deadline = unblocked.Add(timeout)
		return true
	}
	return false
}

// ping writes one ping whose payload is its send time, for the round trip.
func (h *pulse) ping(now time.Time) bool {
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], uint64(now.UnixNano()))
	h.nextPing = now.Add(h.c.s.PingInterval)
	if !h.pending {
		h.pending, h.deadline, h.frames = true, now.Add(h.c.s.PingTimeout), h.cn.frames.Load()
	}
	if !awaitGrant(h.cn, h.c.controlGrant()) {
		return false
	}
	if err := h.cn.writeFrame(ws.OpPing, payload[:]); err != nil {
		if h.cn.isDead() {
			h.c.stats.add(StatPingsAfterDeath, 1)
		}
		return false
	}
	h.c.stats.add(StatPingsSent, 1)
	return true
}

// pong records the round trip of one of our pings.
func (c *Client) pong(body []byte) {
	if len(body) != 8 {
		return
	}
	sent := time.Unix(0, int64(binary.BigEndian.Uint64(body)))
	if rtt := time.Since(sent); rtt >= 0 && rtt < time.Hour {
		c.stats.v[StatLastRTTMicros].Store(rtt.Microseconds())
	}
}
