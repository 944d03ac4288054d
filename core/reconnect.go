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
	// Min is the first delay of the schedule. Defaults to 500 ms.
	Min time.Duration
	// Max caps every delay. Defaults to 30 s.
	Max time.Duration
	// Factor multiplies the delay at each attempt. Defaults to 2.
	Factor float64
	// Jitter randomizes each delay. Defaults to false in Go; Python's
	// default is true.
	Jitter bool
	// MaxAttempts ends the client after that many consecutive failed
	// attempts. Defaults to 0: retry forever.
	MaxAttempts int
}

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
	case b.Min <= 0:
		return invalidArg("reconnect", "min must be positive")
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

// SetHeaderFunc installs f, called before every reconnect attempt for the
// handshake headers (fresh signatures); nil restores Options.Header.
func (c *Client) SetHeaderFunc(f func() (http.Header, error)) {
	c.mu.Lock()
	c.headerFunc = f
	c.mu.Unlock()
}

// header returns the headers for the next attempt: Options.Header for the
// first, the header function's for reconnects.
func (c *Client) header() (http.Header, error) {
	c.mu.Lock()
	f := c.headerFunc
	c.mu.Unlock()
	if f == nil || !c.everOpened.Load() {
		return c.s.Header, nil
	}
	h, err := f()
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Op: "headers", Err: err}
	}
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	return h, nil
}

// retry decides, after the connection or the attempt ended with err,
// whether to dial again and after how long. Every failure goes through the
// same schedule; the schedule restarts (with an immediate first retry) only
// after a connection that stayed open for HealthyAfter, so a server that
// accepts and drops at once cannot cause a tight loop.
func (c *Client) retry(err error, wasOpen bool, upFor time.Duration) (time.Duration, bool) {
	if c.closeRequested() {
		return 0, false
	}
	if wasOpen {
		c.q.putEvent(closeEvent(EventDisconnected, err))
	}
	if c.s.Reconnect == nil || !c.everOpened.Load() || c.fatal(err) {
		return 0, false
	}
	c.mu.Lock()
	policy := c.policy
	c.mu.Unlock()
	immediate := wasOpen && upFor >= c.s.HealthyAfter
	if immediate {
		c.attempt, c.sched = 0, 0
	}
	c.attempt++
	if policy.MaxAttempts > 0 && c.attempt > policy.MaxAttempts {
		return 0, false
	}
	var delay time.Duration
	if !immediate {
		delay = policy.delay(c.sched)
		c.sched++
	}
	delay = max(delay, retryAfter(err))
	return delay, c.announceAttempt(delay, err)
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
		ev.Err, ev.Data = CodeOf(err), []byte(wrap("connection", err).Error())
	}
	c.q.putEvent(ev)
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
