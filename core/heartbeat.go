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
// frame at all arrives within PingTimeout, the peer is declared dead.
func (c *Client) heartbeat(cn *conn) {
	_ = safely("heartbeat", func() error {
		t := time.NewTimer(c.s.PingInterval)
		defer t.Stop()
		for next := c.s.PingInterval; c.wait(cn, t, next); {
			sent, frames := time.Now(), cn.frames.Load()
			if !c.ping(cn, sent) || !c.awaitLife(cn, t, sent, frames) {
				return nil
			}
			next = c.s.PingInterval - time.Since(sent)
		}
		return nil
	})
}

// awaitLife waits up to PingTimeout for any frame after the ping; false
// when the connection died or was declared dead. While our reader is
// blocked on a full queue it cannot see frames, so the window restarts
// when it is free again: a slow consumer never makes a healthy peer look
// dead.
func (c *Client) awaitLife(cn *conn, t *time.Timer, sent time.Time, frames uint64) bool {
	if c.s.PingTimeout <= 0 {
		return true // pings without a verdict
	}
	deadline := sent.Add(c.s.PingTimeout)
	for c.wait(cn, t, time.Until(deadline)) {
		unblocked := time.Unix(0, cn.unblockedAt.Load())
		switch {
		case cn.frames.Load() > frames:
			return true
		case cn.readerBlocked.Load():
			deadline = time.Now().Add(c.s.PingTimeout)
		case unblocked.Add(c.s.PingTimeout).After(deadline):
			deadline = unblocked.Add(c.s.PingTimeout)
		default:
			cn.die(&Error{Code: CodeTimeout, Op: "heartbeat", Err: errPingTimeout})
			return false
		}
	}
	return false
}

// wait arms t for d and waits for it; false once the connection is dead.
func (c *Client) wait(cn *conn, t *time.Timer, d time.Duration) bool {
	t.Reset(max(d, 0))
	select {
	case <-cn.dead:
		return false
	case <-t.C:
		return !cn.isDead()
	}
}

// ping writes one ping whose payload is its send time, for the round trip.
func (c *Client) ping(cn *conn, sent time.Time) bool {
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], uint64(sent.UnixNano()))
	if err := cn.writeFrame(ws.OpPing, payload[:]); err != nil {
		if cn.isDead() {
			c.stats.add(StatPingsAfterDeath, 1)
		}
		return false
	}
	c.stats.add(StatPingsSent, 1)
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
