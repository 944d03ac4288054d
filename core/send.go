package core

import (
	"errors"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// SendFlags modify a send. Values are part of the ABI.
type SendFlags uint32

// The send flags.
const (
	// SendText sends text frames (the message must be UTF-8), else binary.
	SendText SendFlags = 1
	// SendNoWait never blocks the caller: CodeWouldBlock if another write
	// is in progress; a socket that takes only part of the frames at once
	// gets the rest from a goroutine (see conn.writeNoWait).
	SendNoWait SendFlags = 2
)

// Send writes one message; see SendBatch.
func (c *Client) Send(p []byte, flags SendFlags, opening int) error {
	return c.SendBatch([][]byte{p}, []bool{flags&SendText != 0}, flags&^SendText, opening)
}

// SendBatch writes several messages under one lock, coalesced into as few
// socket writes as possible; text[i] makes message i a text frame. It
// checks every message before writing any.
//
// A message is never queued for later: while the client connects or
// reconnects, or while a new connection waits for its on_open (see
// Options.OpenGate), it fails at once with CodeNotConnected -- unless
// opening is that connection's number: the on_open's own sends go out. A
// send that finds the connection just lost learns its fate: NotConnected
// if the client dials again, else CodeClosed with the client's End.
func (c *Client) SendBatch(msgs [][]byte, text []bool, flags SendFlags, opening int) error {
	ops, size, err := frameOps(msgs, text)
	if err != nil {
		return err
	}
	cn, err := c.sendConn(opening)
	if err != nil {
		return err
	}
	if err := c.paceSend(len(msgs), flags&SendNoWait != 0); err != nil {
		return err
	}
	if flags&SendNoWait != 0 {
		err = cn.writeNoWait(ops, msgs)
	} else {
		err = cn.writeFrames(ops, msgs)
	}
	switch CodeOf(err) {
	case CodeOK:
		c.stats.add(StatMessagesOut, int64(len(msgs)))
		c.stats.add(StatBytesOut, int64(size))
		return nil
	case CodeWouldBlock:
		return err
	}
	if !cn.isDead() && !cn.closeSentErr(err) {
		return err // a write lock timeout: the connection lives on
	}
	return cn.afterDeath("send")
}

// paceSend takes n grants of send_rate: at once, or -- with its Wait, and
// unless the caller must not block (an event loop's send, which waits for
// RetryAfter itself) -- waiting up to WriteTimeout.
func (c *Client) paceSend(n int, noWait bool) error {
	r := c.s.SendRate
	if r == nil {
		return nil
	}
	if err := r.fits(n); err != nil {
		return err
	}
	d := r.tryTake(n)
	if d <= 0 {
		return nil
	}
	if noWait {
		if !r.Wait {
			c.stats.add(StatRateRefused, 1)
		}
		return rateLimited("send", d)
	}
	c.stats.add(StatRateWaited, int64(n))
	if err := r.await(c.ctx, n, d, r.Wait, c.s.WriteTimeout, "send"); err != nil {
		if CodeOf(err) == CodeRateLimited {
			c.stats.add(StatRateRefused, 1)
		}
		return err
	}
	return nil
}

// controlGrant reserves, for a control frame under a send_rate that
// counts them, the next grant -- ahead of any waiting data send -- and
// says how long until it is (0: now, or no such limit).
func (c *Client) controlGrant() time.Duration {
	r := c.s.SendRate
	if r == nil || !r.ControlFrames {
		return 0
	}
	d := time.Until(r.reserve())
	if d > 0 {
		c.stats.add(StatRateWaited, 1)
	}
	return max(d, 0)
}

// awaitGrant waits d; false if the connection died meanwhile.
func awaitGrant(cn *conn, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cn.dead:
		return false
	}
}

// frameOps checks the messages and returns their opcodes and total size.
func frameOps(msgs [][]byte, text []bool) ([]ws.OpCode, int, error) {
	if len(msgs) == 0 || len(text) != len(msgs) {
		return nil, 0, invalidArg("messages", "need at least one message, and one text flag per message")
	}
	ops := make([]ws.OpCode, len(msgs))
	size := 0
	for i, p := range msgs {
		ops[i] = ws.OpBinary
		if text[i] {
			if !utf8.Valid(p) {
				return nil, 0, invalidArg("message", "text must be valid UTF-8 (message %d)", i)
			}
			ops[i] = ws.OpText
		}
		size += len(p)
	}
	return ops, size, nil
}

// sendConn returns the connection a send may use, or why there is none.
func (c *Client) sendConn(opening int) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nu := c.rotationConn(opening); nu != nil && c.end == nil {
		return nu, nil // the on_open of a rotation's new connection
	}
	switch {
	case c.end != nil:
		return nil, c.end.closedError("send")
	case c.conn == nil:
		return nil, &Error{Code: CodeNotConnected, Op: "send", Err: errors.New("the connection is not open yet: it is " + c.state.String())}
	case !c.ready && opening != c.connNo:
		return nil, &Error{Code: CodeNotConnected, Op: "send", Err: errors.New("the connection is not open yet: on_open has not returned")}
	}
	return c.conn, nil
}
