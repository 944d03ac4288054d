package core

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Client is a WebSocket client connection and its lifecycle. Open starts it;
// Poll drains its events; Send writes; Close ends it. All methods are safe
// for concurrent use.
type Client struct {
	s      *settings
	ctx    context.Context // cancelled by Close: aborts a dial in progress
	cancel context.CancelFunc
	q      *queue
	stats  stats
	done   chan struct{} // closed when no goroutine of this client is left

	mu          sync.Mutex
	state       State
	conn        *conn  // the open connection, nil otherwise
	err         *Error // why the client ended, if it failed
	subprotocol string

	// Lifecycle, for stats and the reconnect policy.
	everOpened atomic.Bool
	openedAt   atomic.Int64 // unix ns of the current open, 0 when not open

	// Reconnect state (reconnect.go).
	policy     Backoff                     // guarded by mu; SetBackoff changes it live
	headerFunc func() (http.Header, error) // guarded by mu
	attempt    int                         // owned by run: attempts since the last healthy connection
	sched      int                         // owned by run: position in the backoff schedule

	// Close handshake state.
	userClosed  bool // Close or Abort was called: never reconnect
	closeCode   int
	closeReason string
	closeTimer  *time.Timer
}

// Open validates o and starts connecting in the background; it does no I/O
// itself. The outcome arrives as an EventOpen or an EventClosed.
func Open(o Options) (*Client, error) {
	s, err := o.validate()
	if err != nil {
		return nil, err
	}
	c := newClient(s)
	go c.run()
	return c, nil
}

// newClient builds a client that has not started.
func newClient(s *settings) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{s: s, ctx: ctx, cancel: cancel, q: newQueue(s.MaxQueue, s.MaxQueueBytes, s.Overflow), done: make(chan struct{})}
	if s.Reconnect != nil {
		c.policy = *s.Reconnect
	}
	c.headerFunc = s.HeaderFunc
	return c
}

// safely runs f, turning a panic into an internal error.
func safely(op string, f func() error) (err error) {
	defer Recover(op, &err)
	return f()
}

// run is the client's supervisor goroutine: it dials, becomes the reader
// of the connection, and when the connection ends decides whether to dial
// again (see retry). Each connection adds at most a heartbeat goroutine and
// a short-lived one that sends a close frame; all end with the connection.
func (c *Client) run() {
	var err error
	for {
		var cn *conn
		cn, err = c.connect()
		var upFor time.Duration
		if err == nil {
			start := time.Now()
			err = c.session(cn)
			upFor = time.Since(start)
		}
		delay, again := c.retry(err, cn != nil, upFor)
		if !again {
			break
		}
		if !c.sleep(delay) {
			err = c.closedByUser()
			break
		}
	}
	_ = safely("finish", func() error { c.finish(err); return nil })
}

// connect dials once, with fresh headers.
func (c *Client) connect() (cn *conn, err error) {
	c.mu.Lock()
	c.transitionLocked(StateConnecting)
	c.mu.Unlock()
	err = safely("dial", func() error {
		h, err := c.header()
		if err != nil {
			return err
		}
		d, err := dial(c.ctx, c.s, h)
		if err == nil {
			cn = newConn(c, d)
		}
		return err
	})
	return cn, err
}

// session runs one open connection to its end and returns why it ended.
func (c *Client) session(cn *conn) error {
	err := safely("read", func() error { return c.serve(cn) })
	cn.die(err)
	err = cn.endCause()
	c.mu.Lock()
	c.conn = nil
	c.mu.Unlock()
	c.openedAt.Store(0)
	return err
}

// serve announces the open connection and reads until it ends.
func (c *Client) serve(cn *conn) error {
	c.stats.add(StatConnects, 1)
	c.mu.Lock()
	c.conn, c.subprotocol = cn, cn.subprotocol
	opened := c.transitionLocked(StateOpen)
	c.mu.Unlock()
	if opened {
		if c.everOpened.Swap(true) {
			c.stats.add(StatReconnects, 1)
		}
		c.openedAt.Store(time.Now().UnixNano())
		c.q.putEvent(Event{Kind: EventOpen, Data: []byte(cn.subprotocol)})
	} else {
		go c.closeConn(cn) // Close was called while the handshake finished
	}
	if c.s.PingInterval > 0 {
		go c.heartbeat(cn)
	}
	err := c.readLoop(cn)
	if _, ok := AsCloseError(err); ok {
		cn.awaitServerClose(c.closeDeadline())
	} else if code := closeCodeFor(err); code != CloseAbnormal {
		// We end it (RFC 6455 7.1.7): tell the peer why, best effort.
		_ = cn.writeClose(code, "")
	}
	return err
}

// closedByUser is the end reported when Close interrupted a reconnect.
func (c *Client) closedByUser() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &CloseError{Code: c.closeCode, Reason: c.closeReason}
}

// finish reports the end of the client once: the terminal EventClosed, the
// closed state, and the done channel.
func (c *Client) finish(err error) {
	ev := closeEvent(EventClosed, err)
	if ev.Err != CodeOK {
		e := wrap("connection", err)
		c.mu.Lock()
		c.err = e
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.transitionLocked(StateClosed)
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	c.mu.Unlock()
	c.cancel()
	c.q.putEvent(ev)
	c.q.close()
	close(c.done)
}

// closeEvent describes the end of a connection, err, as an event of kind:
// the peer's close code and reason, or the code we closed with and our
// error. The data is the reason, or the error's message.
func closeEvent(kind EventKind, err error) Event {
	ev := Event{Kind: kind, CloseCode: CloseAbnormal}
	if ce, ok := AsCloseError(err); ok {
		ev.CloseCode, ev.Data = ce.Code, []byte(ce.Reason)
		return ev
	}
	e := wrap("connection", err)
	ev.Err, ev.Status, ev.Data = e.Code, e.Status, []byte(e.Error())
	ev.Dialing = e.Op == "dial" || e.Op == "proxy"
	if code := closeCodeFor(err); code != CloseAbnormal {
		ev.CloseCode = code
	}
	return ev
}

// transitionLocked moves to state to if the state table allows it.
func (c *Client) transitionLocked(to State) bool {
	if !c.state.canMoveTo(to) {
		return false
	}
	c.state = to
	return true
}

// State returns the current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Subprotocol returns the subprotocol the server chose, or "".
func (c *Client) Subprotocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subprotocol
}

// Err returns why the client ended, or nil while it runs or after a clean close.
func (c *Client) Err() *Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the client has stopped and all its goroutines are gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Send writes one message: a text frame if text (p must be UTF-8), else a
// binary frame. It fails at once with CodeNotConnected while connecting and
// CodeClosed once closing: a message is never queued for later.
func (c *Client) Send(p []byte, text bool) error {
	return c.SendBatch([][]byte{p}, []bool{text})
}

// SendBatch writes several messages under one lock, coalesced into as few
// socket writes as possible. It checks every message before writing any.
func (c *Client) SendBatch(msgs [][]byte, text []bool) error {
	cn, err := c.openConn()
	if err != nil {
		return err
	}
	ops := make([]ws.OpCode, len(msgs))
	size := 0
	for i, p := range msgs {
		ops[i] = ws.OpBinary
		if text[i] {
			if !utf8.Valid(p) {
				return invalidArg("message", "text must be valid UTF-8 (message %d)", i)
			}
			ops[i] = ws.OpText
		}
		size += len(p)
	}
	if err := cn.writeFrames(ops, msgs); err != nil {
		return err
	}
	c.stats.add(StatMessagesOut, int64(len(msgs)))
	c.stats.add(StatBytesOut, int64(size))
	return nil
}

// openConn returns the open connection, or why there is none.
func (c *Client) openConn() (*conn, error) {
	c.mu.Lock()
	cn, st, cause := c.conn, c.state, c.err
	c.mu.Unlock()
	switch {
	case st == StateConnecting || st == StateReconnecting:
		return nil, &Error{Code: CodeNotConnected, Op: "send", Err: errors.New("the connection is not open yet")}
	case st != StateOpen || cn == nil:
		e := &Error{Code: CodeClosed, Op: "send", Err: errors.New("the connection is closed")}
		if cause != nil {
			e.Err = cause
		}
		return nil, e
	}
	return cn, nil
}

// Poll waits up to timeout for events and moves up to len(dst) of them into
// dst, as many as fit in maxBytes of data. If the next event alone needs
// more than maxBytes, it returns CodeBufferTooSmall and the size in need;
// the event stays queued. Once the terminal EventClosed was taken, Poll
// returns CodeClosed at once.
func (c *Client) Poll(dst []Event, maxBytes int, timeout time.Duration) (n, need int, err error) {
	n, need, closed := c.q.take(dst, maxBytes, timeout)
	switch {
	case need > 0:
		return 0, need, &Error{Code: CodeBufferTooSmall, Op: "poll", Err: errors.New("the next event does not fit")}
	case closed:
		return 0, 0, &Error{Code: CodeClosed, Op: "poll", Err: errors.New("no more events")}
	}
	return n, 0, nil
}

// SetSignal installs a level signal for "events are waiting" (see Signal).
func (c *Client) SetSignal(s Signal) { c.q.setSignal(s) }

// SetNotify installs f, called from an engine goroutine whenever the queue
// goes from empty to non-empty. f must return quickly.
func (c *Client) SetNotify(f func()) { c.q.setNotify(f) }

// Close starts the close handshake (RFC 6455 7.1.2) with code and reason and
// returns at once: the close frame is sent, the server's awaited for at most
// CloseTimeout, and then TCP is closed. Done tells when it is over. Close is
// idempotent and safe from any goroutine; only the first call's code counts.
func (c *Client) Close(code int, reason string) error {
	if err := ValidateCloseCode(code); err != nil {
		return err
	}
	if err := validCloseReason(reason); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.userClosed || c.state == StateClosed {
		return nil
	}
	c.userClosed = true
	c.closeCode, c.closeReason = code, reason
	c.transitionLocked(StateClosing) // unless the peer started closing already
	c.cancel()                       // aborts a dial or a reconnect wait
	c.q.refuse()
	if cn := c.conn; cn != nil {
		go c.closeConn(cn)
	}
	return nil
}

// closeConn sends our close frame and arms the close timeout.
func (c *Client) closeConn(cn *conn) {
	_ = safely("close", func() error {
		c.mu.Lock()
		code, reason := c.closeCode, c.closeReason
		c.closeTimer = time.AfterFunc(c.s.CloseTimeout, func() {
			_ = safely("close timeout", func() error {
				cn.die(&Error{Code: CodeTimeout, Op: "close", Err: errors.New("no close frame from the server within close_timeout")})
				return nil
			})
		})
		c.mu.Unlock()
		if err := cn.writeClose(code, reason); err != nil && !cn.closeSentErr(err) {
			cn.die(err)
		}
		return nil
	})
}

// peerClosing records that the peer started or answered the close handshake.
func (c *Client) peerClosing() {
	c.mu.Lock()
	c.transitionLocked(StateClosing)
	c.mu.Unlock()
}

// Abort ends the client without a close handshake and waits up to timeout
// for its goroutines to finish. It is what freeing a handle does.
func (c *Client) Abort(timeout time.Duration) bool {
	c.mu.Lock()
	cn := c.conn
	c.userClosed = true
	c.transitionLocked(StateClosing)
	c.mu.Unlock()
	c.cancel()
	c.q.refuse()
	if cn != nil {
		cn.die(&Error{Code: CodeClosed, Op: "abort", Err: errors.New("aborted")})
	}
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	}
}
