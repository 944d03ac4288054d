package core

import (
	"errors"
	"time"
)

// PollFlags modify a poll. Values are part of the ABI.
type PollFlags uint32

// PollFast: do not wait; with nothing queued, read what the socket has on
// the calling thread (see PollFast).
const PollFast PollFlags = 1

// PollFast is Poll for a consumer that waits for events itself (turn.go):
// when nothing is queued, the calling thread reads the frames the socket
// has, and reads them into the queue, without the reader goroutine. It
// does not wait, but with BusyPoll it keeps trying that long. gen, when
// not 0, is the connection whose socket the caller holds (SocketFD): the
// caller may wait on it, with the signal, before calling again -- and
// should, as an event loop does, rather than call first. 0 means wait on
// the signal alone: the reader goroutine has the socket.
func (c *Client) PollFast(dst []Event, maxBytes int) (n, need, gen int, err error) {
	var until time.Time
	for {
		if n, need, gen, err = c.pollFastOnce(dst, maxBytes); n > 0 || need > 0 || err != nil || c.s.BusyPoll <= 1 {
			return n, need, gen, err
		}
		now := time.Now()
		if until.IsZero() {
			until = now.Add(c.s.BusyPoll)
		}
		if !now.Before(until) {
			return n, need, gen, err
		}
	}
}

func (c *Client) pollFastOnce(dst []Event, maxBytes int) (n, need, gen int, err error) {
	cn, num := c.readableConn()
	if n, need, err = c.Poll(dst, maxBytes, 0); n > 0 || need > 0 || err != nil {
		return n, need, leasedTo(cn, num), err
	}
	if cn == nil || cn.turn == nil || c.rot.Load() != nil || !cn.turn.take() {
		return 0, 0, 0, nil // during a rotation only the reader goroutines read (see queueRotating)
	}
	c.q.holdSignal()
	before := c.stats.v[StatMessagesIn].Load()
	look, readErr := cn.readWhole()
	c.stats.add(StatFastMessages, c.stats.v[StatMessagesIn].Load()-before)
	cn.turn.give(look, readErr)
	n, need, err = c.Poll(dst, maxBytes, 0)
	c.q.releaseSignal()
	return n, need, leasedTo(cn, num), err
}

// leasedTo is num if the consumer holds connection cn's turn: it may wait
// on its socket.
func leasedTo(cn *conn, num int) int {
	if cn != nil && cn.turn != nil && cn.turn.leased() {
		return num
	}
	return 0
}

// PollWait is PollFast that waits, up to timeout, on the calling thread:
// on signal (a descriptor readable while events are queued: the caller's
// Signal) and, while the caller holds the turn, on the socket itself
// (poll(2); the thread a Python caller blocks in has released the GIL).
// When the socket wakes it, the same call reads the frames.
func (c *Client) PollWait(dst []Event, maxBytes int, timeout time.Duration, signal int) (n, need int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		n, need, gen, err := c.PollFast(dst, maxBytes)
		left := time.Until(deadline)
		if n > 0 || need > 0 || err != nil || left <= 0 {
			return n, need, err
		}
		c.waitFor(signal, gen, left)
	}
}

// waitFor waits until signal or, if the caller still holds connection
// gen's turn, its socket is readable, or d passes.
func (c *Client) waitFor(signal, gen int, d time.Duration) {
	fds := []int{signal}
	if cn, num := c.readableConn(); gen != 0 && num == gen && cn.turn.take() {
		// Holding the turn for the wait: the socket's descriptor stays
		// open (turn.end waits for the give), and the reader goroutine
		// leaves the socket to us.
		defer cn.turn.give(false, nil)
		if fd, err := cn.turn.sock.consumerFD(); err == nil {
			fds = append(fds, fd)
		}
	}
	pollFDs(fds, d)
}

// readableConn is the open connection and its number, if any.
func (c *Client) readableConn() (*conn, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.isDead() {
		return nil, 0
	}
	return c.conn, c.connNo
}

// SocketFD returns a new descriptor of connection gen's socket, which the
// caller owns and closes: the consumer waits on it between PollFast calls.
func (c *Client) SocketFD(gen int) (int, error) {
	cn, num := c.readableConn()
	if cn == nil || cn.turn == nil || num != gen {
		return -1, &Error{Code: CodeNotConnected, Op: "socket", Err: errors.New("that connection is not open")}
	}
	return cn.turn.sock.dup()
}
