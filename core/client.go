package core

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadyws/steadyws/core/internal/spawn"
)

// Client is a WebSocket client connection and its lifecycle. Open starts it;
// Poll drains its events; Send writes; Close ends it. All methods are safe
// for concurrent use.
type Client struct {
	s         *settings
	ctx       context.Context // cancelled by Close: aborts a dial in progress
	cancel    context.CancelFunc
	q         *queue
	stats     stats
	group     spawn.Group   // every goroutine of the client but its supervisor
	done      chan struct{} // closed when no goroutine of this client is left
	once      sync.Once     // guards the end
	startOnce sync.Once

	mu          sync.Mutex
	state       State
	conn        *conn // the open connection, nil otherwise
	connNo      int   // connections opened so far: conn's number
	ready       bool  // conn takes every sender's messages (see Options.OpenGate)
	end         *End  // set once the client's end is decided
	err         *Error
	subprotocol string

	// The hub members: the observer gets the lifecycle as it happens and
	// answers header requests; the consumer, if any, takes the whole event
	// stream (they are one member when one hub does both).
	observer atomic.Pointer[member]
	consumer atomic.Pointer[member]

	// Lifecycle, for stats and the reconnect policy.
	everOpened atomic.Bool
	openedAt   atomic.Int64             // unix ns of the current open, 0 when not open
	lastData   atomic.Int64             // unix ns when the last data message was read, 0 before the first
	dialPaced  bool                     // the next dial's connect_rate grant is reserved (supervisor only)
	rot        atomic.Pointer[rotation] // the rotation under way, or the last one until its duplicates are past
	rotating   bool                     // a rotation goroutine runs (guarded by mu)

	// Reconnect state (reconnect.go).
	policy  Backoff // guarded by mu; SetBackoff changes it live
	attempt int     // owned by the supervisor: attempts since the last healthy connection
	sched   int     // owned by the supervisor: position in the backoff schedule
	headers headerRequests

	// Close handshake state, guarded by mu.
	userClosed  bool // Close or Abort was called: never reconnect
	closeCode   int
	closeReason string
}

// Open validates o and starts connecting in the background; it does no I/O
// itself. The outcome arrives as an EventOpen or an EventClosed.
func Open(o Options) (*Client, error) {
	c, err := NewClient(o)
	if err != nil {
		return nil, err
	}
	c.Start()
	return c, nil
}

// NewClient validates o and returns a client that has not started, to be
// attached to a hub before Start so that the hub sees every event.
func NewClient(o Options) (*Client, error) {
	s, err := o.validate()
	if err != nil {
		return nil, err
	}
	return newClient(s), nil
}

// Start starts connecting in the background. Only the first call counts.
func (c *Client) Start() {
	c.startOnce.Do(func() { spawn.Go("supervisor", c.supervisorPanicked, c.run) })
}

// newClient builds a client that has not started.
func newClient(s *settings) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{s: s, ctx: ctx, cancel: cancel, q: newQueue(int(s.MaxQueue), s.MaxQueueBytes, s.Overflow), done: make(chan struct{})}
	if s.Reconnect != nil {
		c.policy = *s.Reconnect
	}
	c.group.OnPanic = c.goroutinePanicked
	c.q.observe = func(ev Event) {
		if m := c.observer.Load(); m != nil {
			m.lifecycle(ev)
		}
	}
	return c
}

// goroutinePanicked ends the current connection with the panic of one of
// its goroutines; the reconnect policy then runs as for any failure.
func (c *Client) goroutinePanicked(err error) {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		cn.die(internalError(err))
	}
}

// supervisorPanicked ends the client when its supervisor panicked: its
// connection first, since nobody reads it any more.
func (c *Client) supervisorPanicked(err error) {
	cause := internalError(err)
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		cn.die(cause)
	}
	c.finish(fate{cause: cause, end: endOf(cause, SideNone)})
}

// safely runs f, turning a panic into an internal error.
func safely(op string, f func() error) (err error) {
	defer Recover(op, &err)
	return f()
}

// run is the client's supervisor: it dials, becomes the reader of the
// connection, and when the connection ends follows its fate (see plan).
// Each connection adds a heartbeat goroutine and, on close, one that sends
// the close frame; all belong to the group and end with the connection.
func (c *Client) run() {
	var last fate
	for {
		cn, err := c.connect()
		if err == nil {
			last = c.session(cn)
		} else {
			last = c.plan(err, nil)
		}
		if !c.follow(&last, cn != nil) {
			break
		}
		if !c.sleep(last.delay) {
			break
		}
	}
	c.finish(last)
}

// connect dials once, with fresh headers: the first dial, which no
// Reconnecting announced, waits its turn of connect_rate here.
func (c *Client) connect() (cn *conn, err error) {
	if !c.dialPaced && !c.sleep(c.dialDelay(0)) {
		return nil, &Error{Code: CodeClosed, Op: "dial", Err: context.Canceled}
	}
	c.dialPaced = false
	c.mu.Lock()
	c.transitionLocked(StateConnecting)
	c.mu.Unlock()
	return c.dialOnce("dial")
}

// dialOnce dials a connection with fresh headers (a reconnect's, or a
// rotation's).
func (c *Client) dialOnce(op string) (cn *conn, err error) {
	err = safely(op, func() error {
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

// session runs one open connection to its end and returns its fate.
func (c *Client) session(cn *conn) fate {
	c.open(cn)
	c.startWatchers(cn)
	err := safely("read", func() error { return c.readLoop(cn) })
	for {
		if cn.turn != nil {
			cn.turn.end()
		}
		r, rotated := c.adopt(cn)
		if !rotated {
			break
		}
		c.retire(cn, err) // a rotation replaced it: the new one is the session's now
		cn, err = r.nu, <-r.done
	}
	f := c.settle(cn, err)
	c.finishConn(cn, f.cause)
	c.mu.Lock()
	c.conn, c.ready = nil, false
	c.mu.Unlock()
	c.openedAt.Store(0)
	return f
}

// startWatchers starts what watches an open connection: the heartbeat,
// the staleness watch, and the age that rotates it.
func (c *Client) startWatchers(cn *conn) {
	if c.s.PingInterval > 0 {
		c.group.Go("heartbeat", func() { c.heartbeat(cn) })
	}
	if c.s.MaxSilence > 0 {
		c.group.Go("silence", func() { c.watchSilence(cn) })
	}
	if age := c.s.MaxConnectionAge; age > 0 {
		c.group.Go("age", func() {
			t := time.NewTimer(age)
			defer t.Stop()
			select {
			case <-cn.dead:
			case <-t.C:
				_ = c.Rotate()
			}
		})
	}
}

// open announces the new connection. With the open gate, only the sends of
// its on_open (Options.OpenGate) go out until Ready is called.
func (c *Client) open(cn *conn) {
	c.stats.add(StatConnects, 1)
	now := time.Now()
	cn.openedAt = now
	c.mu.Lock()
	c.conn, c.subprotocol = cn, cn.subprotocol
	c.connNo++
	n := c.connNo
	c.ready = !c.s.OpenGate
	if c.ready {
		c.transitionLocked(StateOpen)
	}
	closing := c.userClosed
	c.mu.Unlock()
	if c.everOpened.Swap(true) {
		c.stats.add(StatReconnects, 1)
	}
	c.openedAt.Store(now.UnixNano())
	c.emit(Event{Kind: EventOpen, Data: []byte(cn.subprotocol), Runes: n})
	if closing {
		c.group.Go("close", func() { c.closeConn(cn) }) // Close came while the handshake finished
	}
}

// Ready tells the client that connection n's on_open has returned: every
// sender may use it now. It is a no-op for any other connection.
func (c *Client) Ready(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readyRotation(n) {
		return
	}
	if c.conn != nil && c.connNo == n && !c.ready {
		c.ready = true
		c.transitionLocked(StateOpen)
	}
}

// settle decides the fate of a connection whose reader has returned with
// err, before the rest of its close: from here on, a sender that finds it
// dead learns at once whether the client reconnects or has ended.
func (c *Client) settle(cn *conn, err error) fate {
	cause := cn.endCause(err)
	f := c.plan(cause, cn)
	if !f.again {
		c.decideEnd(f.end)
		c.mu.Lock()
		c.transitionLocked(StateClosing) // ending for good: no longer "open" once senders learn it
		c.mu.Unlock()
	}
	cn.fate = f
	close(cn.settled)
	return f
}

// finishConn completes the end of a connection: the rest of the close
// handshake, then the socket.
func (c *Client) finishConn(cn *conn, cause error) {
	if _, ok := AsCloseError(cause); ok {
		cn.awaitServerClose(c.closeDeadline())
	} else if code := closeCodeFor(cause); code != CloseAbnormal && !cn.isDead() {
		// We end it (RFC 6455 7.1.7): tell the peer why, best effort.
		_ = cn.writeClose(code, "")
	}
	cn.die(cause)
}

// decideEnd records the client's end once; later decisions are ignored, so
// a Close of ours is the end even if the connection then fails.
func (c *Client) decideEnd(e End) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.end == nil {
		c.end = &e
	}
}

// finish reports the end of the client, whose last connection or attempt
// had fate last, once: the closed state, the terminal EventClosed, and --
// after every goroutine of the group has returned -- the done channel.
func (c *Client) finish(last fate) {
	c.once.Do(func() {
		c.decideEnd(last.end)
		c.mu.Lock()
		end := *c.end
		if end.Err != CodeOK {
			c.err = wrap("connection", last.cause)
			if c.err == nil {
				c.err = &Error{Code: end.Err, Op: "connection", Err: errors.New(end.Detail)}
			}
		}
		c.transitionLocked(StateClosed)
		c.mu.Unlock()
		c.cancel()
		c.group.Close()
		c.emit(end.event(EventClosed))
		c.q.close()
		close(c.done)
	})
}

// emit queues a lifecycle event and shows it to the observer, if any.
func (c *Client) emit(ev Event) {
	if ev.Time == 0 {
		ev.Time = time.Now().UnixNano()
	}
	c.q.putEvent(ev)
	if m := c.observer.Load(); m != nil {
		m.lifecycle(ev)
	}
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

// End returns how the client ended, once that is decided: after its end,
// after Close, or once its last connection was lost for good.
func (c *Client) End() (End, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.end == nil {
		return End{}, false
	}
	return *c.end, true
}

// Done is closed when the client has stopped and all its goroutines are gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Poll waits up to timeout for events and moves up to len(dst) of them into
// dst, as many as fit in maxBytes of data. If the next event alone needs
// more than maxBytes, it returns CodeBufferTooSmall and the size in need;
// the event stays queued. Once the terminal EventClosed was taken, Poll
// returns CodeClosed at once. The messages of a batch count against
// MaxQueue and MaxQueueBytes until the next Poll.
func (c *Client) Poll(dst []Event, maxBytes int, timeout time.Duration) (n, need int, err error) {
	n, need, closed := c.q.take(dst, maxBytes, timeout)
	switch {
	case need > 0:
		return 0, need, &Error{Code: CodeBufferTooSmall, Op: "poll", Err: errors.New("the next event does not fit")}
	case closed:
		end, _ := c.End()
		return 0, 0, end.closedError("poll")
	}
	return n, 0, nil
}

// SetSignal installs a level signal for "events are waiting" (see Signal).
func (c *Client) SetSignal(s Signal) { c.q.setSignal(s) }

// SetNotify installs f, called from an engine goroutine whenever the queue
// goes from empty to non-empty (and once at once if events wait already).
// f must return quickly.
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
	if c.end == nil {
		c.end = &End{Code: code, Reason: reason, ClosedBy: SideClient}
	}
	c.transitionLocked(StateClosing) // unless the peer started closing already
	c.cancel()                       // aborts a dial or a reconnect wait
	c.q.refuse()
	if cn := c.conn; cn != nil {
		if cn.turn != nil {
			cn.turn.recall() // the reader reads the server's close frame, whoever waits
		}
		c.group.Go("close", func() { c.closeConn(cn) })
		if r := c.rot.Load(); r != nil && r.nu != nil && r.nu != cn && !r.nu.isDead() {
			nu := r.nu // a rotation's new connection closes too
			c.group.Go("close", func() { c.closeConn(nu) })
		}
	}
	return nil
}

// closeConn sends our close frame and waits for the connection to end (RFC
// 6455 7.1.1: the server then closes TCP), all within CloseTimeout from
// now -- also when a stalled write holds the write lock.
func (c *Client) closeConn(cn *conn) {
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	c.closeConnWith(cn, code, reason)
}

// closeConnWith is closeConn with code and reason (a rotation's 1000).
func (c *Client) closeConnWith(cn *conn, code int, reason string) {
	limit := c.s.CloseTimeout
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	if w := c.s.WriteTimeout; limit == 0 || (w > 0 && w < limit) {
		limit = w
	}
	if err := cn.writeCloseWithin(code, reason, limit); err != nil && !cn.closeSentErr(err) {
		cn.die(err)
		return
	}
	select {
	case <-cn.dead:
	case <-expired:
		cn.die(&Error{Code: CodeTimeout, Op: "close", Err: errors.New("no close frame from the server within close_timeout")})
	}
}

// peerClosing records that the peer of connection cn started or answered
// the close handshake.
func (c *Client) peerClosing(cn *conn) {
	c.mu.Lock()
	if c.conn == cn { // not a connection a rotation replaced
		c.transitionLocked(StateClosing)
	}
	c.mu.Unlock()
}

// Abort ends the client without a close handshake and waits up to timeout
// for its goroutines to finish. It is what freeing a handle does.
func (c *Client) Abort(timeout time.Duration) bool {
	c.mu.Lock()
	cn := c.conn
	if !c.userClosed && c.end == nil {
		c.end = &End{Code: CloseAbnormal, Err: CodeClosed, Detail: "aborted", ClosedBy: SideClient}
	}
	c.userClosed = true
	c.transitionLocked(StateClosing)
	c.mu.Unlock()
	c.cancel()
	c.q.refuse()
	if cn != nil {
		cn.die(&Error{Code: CodeClosed, Op: "abort", Err: errors.New("aborted")})
	}
	if r := c.rot.Load(); r != nil {
		if nu, _ := r.newConn(); nu != nil {
			nu.die(&Error{Code: CodeClosed, Op: "abort", Err: errors.New("aborted")})
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

var errClientEnded = errors.New("the connection has ended")
