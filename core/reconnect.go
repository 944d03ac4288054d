package core

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/jpillora/backoff"
)

// Backoff is the reconnect policy. The schedule itself is
// github.com/jpillora/backoff: Min × Factor^n, capped at Max, with Jitter
// spreading each delay uniformly between Min and that value so a fleet of
// clients does not reconnect in lock step.
type Backoff struct {
	// Min is the first delay of the schedule, at least MinBackoff.
	// Defaults to 500 ms.
	Min time.Duration
	// Max caps every delay. Defaults to 30 s.
	Max time.Duration
	// Factor multiplies the delay at each attempt. Defaults to 2.
	Factor float64
	// Jitter randomizes each delay. Defaults to false in Go; the C API's
	// and Python's default is true.
	Jitter bool
	// MaxAttempts ends the client after that many consecutive failed
	// attempts. Defaults to 0: retry forever.
	MaxAttempts int
}

// MinBackoff is the least delay a schedule may start with: no policy can
// make a tight reconnect loop (a healthy connection's one immediate retry
// aside, which HealthyAfter spaces out).
const MinBackoff = 50 * time.Millisecond

// DefaultFatalStatuses are the handshake statuses that end the client
// instead of a retry: a bad request, key or path will not fix itself.
var DefaultFatalStatuses = []int{400, 401, 403, 404}

func (b Backoff) withDefaults() Backoff {
	if b.Min == 0 {
		b.Min = 500 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = 30 * time.Second
	}
	if b.Factor == 0 {
		b.Factor = 2
	}
	return b
}

func (b Backoff) validate() error {
	switch {
	case b.Min < MinBackoff:
		return invalidArg("reconnect", "min must be at least %v (no policy may reconnect in a tight loop), got %v", MinBackoff, b.Min)
	case b.Max < b.Min:
		return invalidArg("reconnect", "max must be at least min")
	case b.Factor < 1:
		return invalidArg("reconnect", "factor must be at least 1")
	case b.MaxAttempts < 0:
		return invalidArg("reconnect", "max_attempts must not be negative")
	}
	return nil
}

// delay is the wait before the attempt at position n (0-based) of the schedule.
func (b Backoff) delay(n int) time.Duration {
	s := backoff.Backoff{Min: b.Min, Max: b.Max, Factor: b.Factor, Jitter: b.Jitter}
	return s.ForAttempt(float64(n))
}

// SetBackoff changes the reconnect policy of a live client; it takes effect
// from the next attempt. It fails if the client was opened without one.
func (c *Client) SetBackoff(b Backoff) error {
	b = b.withDefaults()
	if err := b.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.Reconnect == nil {
		return invalidArg("reconnect", "this client was opened with reconnect off")
	}
	c.policy = b
	return nil
}

// fate is what follows the end of a connection or of a failed attempt.
type fate struct {
	cause error
	end   End           // how it ended: the client's end unless again
	again bool          // dial again, after delay
	delay time.Duration //
	// The reconnect counters as they will be once the attempt is announced.
	attempt, sched int
}

// plan decides, after the connection cn (nil for a failed attempt) or the
// attempt ended with cause, whether to dial again and after how long. It
// changes nothing: follow carries it out. Every failure goes through the
// same schedule; the schedule restarts (with an immediate first retry) only
// after a connection that stayed open for HealthyAfter, so a server that
// accepts and drops at once cannot cause a tight loop.
func (c *Client) plan(cause error, cn *conn) fate {
	side := SideNone
	if cn != nil {
		side = cn.closedBy()
	}
	f := fate{cause: cause, end: endOf(cause, side)}
	if cn == nil {
		f.end.Dialing = f.end.Err != CodeOK
	}
	c.mu.Lock()
	policy, closing := c.policy, c.userClosed
	c.mu.Unlock()
	if closing || c.s.Reconnect == nil || !c.everOpened.Load() || c.fatal(cause) {
		return f
	}
	healthy := cn != nil && cn.upFor() >= c.s.HealthyAfter
	f.attempt, f.sched = c.attempt+1, c.sched
	if healthy {
		f.attempt, f.sched = 1, 0
	}
	if policy.MaxAttempts > 0 && f.attempt > policy.MaxAttempts {
		return f
	}
	if !healthy {
		f.delay = policy.delay(f.sched)
		f.sched++
	}
	f.delay = max(f.delay, retryAfter(cause))
	f.again = true
	return f
}

// follow carries out fate f of a connection (wasOpen) or an attempt: it
// reports the loss, and announces the next attempt if there is one. It
// returns false when the client ends instead.
func (c *Client) follow(f *fate, wasOpen bool) bool {
	if c.closeRequested() {
		return false
	}
	if wasOpen {
		c.emit(f.end.event(EventDisconnected))
	}
	if !f.again {
		return false
	}
	c.attempt, c.sched = f.attempt, f.sched
	f.delay = c.dialDelay(f.delay)
	return c.announceAttempt(f.delay, f.cause)
}

// announceAttempt moves to reconnecting and queues the attempt event; it
// fails if Close got there first.
func (c *Client) announceAttempt(delay time.Duration, err error) bool {
	c.mu.Lock()
	ok := c.transitionLocked(StateReconnecting)
	c.mu.Unlock()
	if !ok {
		return false
	}
	c.stats.v[StatAttempt].Store(int64(c.attempt))
	ev := Event{Kind: EventReconnecting, Runes: c.attempt, Delay: delay}
	if err != nil {
		// End.Err is for Go consumers; the C layout carries the text.
		ev.End.Err, ev.Data = CodeOf(err), []byte(wrap("connection", err).Error())
	}
	c.emit(ev)
	return true
}

func (c *Client) closeRequested() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userClosed
}

// fatal reports a refusal that retrying will not fix: a handshake status
// in FatalStatuses, or a proxy that wants credentials it did not get (407).
func (c *Client) fatal(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return (e.Code == CodeHandshake && slices.Contains(c.s.FatalStatuses, e.Status)) ||
		(e.Code == CodeProxy && e.Status == http.StatusProxyAuthRequired)
}

// retryAfter is the wait a 429 or 503 response asked for (RFC 9110 10.2.3).
func retryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// sleep waits d, or until Close; it reports whether to go on.
// dialDelay is how long the next dial waits: d, or longer if connect_rate
// has no room by then -- the grant is reserved now, so the Reconnecting
// event shows the whole wait. Only the supervisor goroutine calls it.
func (c *Client) dialDelay(d time.Duration) time.Duration {
	r := c.s.ConnectRate
	if r == nil {
		return d
	}
	c.dialPaced = true
	return max(time.Until(r.reserveFrom(time.Now().Add(d))), 0)
}

func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// headerRequests is the exchange by which a reconnect attempt gets fresh
// handshake headers (auth signatures) from the observer -- the Python
// package's callback thread or event loop, so that the user's code never
// runs on an engine thread.
type headerRequests struct {
	last  int              // the number of the latest request; guarded by Client.mu
	reply chan headerReply // where it is answered, nil when none waits
}

type headerReply struct {
	h   http.Header
	err error
}

// header returns the headers for the next attempt: Options.Header for the
// first one, and for reconnects too unless Options.HeaderRequests asks the
// observer for fresh ones.
func (c *Client) header() (http.Header, error) {
	m := c.observer.Load()
	if !c.s.HeaderRequests || !c.everOpened.Load() || m == nil {
		return c.s.Header, nil
	}
	reply := make(chan headerReply, 1)
	c.mu.Lock()
	c.headers.last++
	req := c.headers.last
	c.headers.reply = reply
	c.mu.Unlock()
	m.control(Event{Kind: EventHeaders, Runes: req})
	var expired <-chan time.Time
	if c.s.OpenTimeout > 0 {
		t := time.NewTimer(c.s.OpenTimeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-reply:
		return r.h, r.err
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	case <-expired:
		return nil, &Error{Code: CodeTimeout, Op: "headers", Err: errors.New("no headers within open_timeout")}
	}
}

// ProvideHeaders answers header request req: pairs are the headers, or
// failure says why there are none (the attempt then fails and the backoff
// schedule goes on). Invalid headers fail the attempt, and are refused here
// too, so the caller can say what was wrong.
func (c *Client) ProvideHeaders(req int, pairs [][2]string, failure string) error {
	c.mu.Lock()
	reply := c.headers.reply
	if reply == nil || req != c.headers.last {
		c.mu.Unlock()
		return invalidArg("request", "no header request %d is waiting", req)
	}
	c.headers.reply = nil
	c.mu.Unlock()
	if failure != "" {
		reply <- headerReply{err: &Error{Code: CodeInvalidArgument, Op: "headers", Err: errors.New(failure)}}
		return nil
	}
	h, err := headerOf(pairs)
	reply <- headerReply{h: h, err: err}
	return err
}
