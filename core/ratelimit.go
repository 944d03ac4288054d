package core

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RateLimit is a budget of messages (or dial attempts) shared by every
// client given it: at most Rate grants within any Per, as venues count
// them ("5 messages per second per connection", "300 connections per 5
// minutes per IP"). Two connections that each respect a limit can break it
// together; one RateLimit given to both cannot.
//
// It is a sliding log rather than a token bucket: a bucket of Rate tokens
// refilled at Rate/Per lets almost 2 x Rate through in some window of Per,
// and a venue that counts in such windows disconnects for it. The log of
// the last Rate grant times is exact, with a margin of 5% of Per (see
// margin).
// Burst, if set, smooths the grants the way a bucket of Burst tokens
// would: at most Burst within any Per x Burst / Rate.
//
// Control frames (ControlFrames) reserve their grant: a pong takes the
// next grant the budget allows, ahead of data sends that wait -- which
// take a grant only once one is free now, and only after every
// reservation -- so a pong never waits behind data.
type RateLimit struct {
	Rate          int
	Per           time.Duration
	Burst         int  // 0: none (Rate back to back)
	ControlFrames bool // our pings and pongs take grants too
	Wait          bool // a send waits for a grant (bounded by write_timeout) rather than failing at once

	windows []window // what a grant must respect, derived once from Rate, Per and Burst

	mu  sync.Mutex
	log []time.Time // grant times, oldest first, at most Rate; the last may be reservations, in the future
}

// margin: a window is Per + Per/margin long. Sends spaced exactly Per
// apart may be counted closer together by the venue -- the network, and
// the venue's own reading, may delay the first more than the last -- so
// the budget keeps 5% (50 ms of a second) in hand.
const margin = 20

// MaxRate bounds RateLimit.Rate: the log holds one time per grant.
const MaxRate = 1 << 20

// NewRateLimit checks the parameters; each error names its parameter.
func NewRateLimit(n int, per time.Duration, burst int, controlFrames, wait bool) (*RateLimit, error) {
	switch {
	case n < 1 || n > MaxRate:
		return nil, invalidArg("rate", "must be between 1 and %d, got %d", MaxRate, n)
	case per < time.Millisecond || per > maxSeconds*time.Second:
		return nil, invalidArg("per", "must be between 0.001 and %d seconds, got %v", maxSeconds, per.Seconds())
	case burst < 0 || burst > n:
		return nil, invalidArg("burst", "must be between 1 and rate (%d), got %d", n, burst)
	}
	r := &RateLimit{Rate: n, Per: per, Burst: burst, ControlFrames: controlFrames, Wait: wait}
	r.windows = []window{{n, per + per/margin}}
	if burst > 0 && burst < n {
		span := time.Duration(int64(per) * int64(burst) / int64(n))
		r.windows = append(r.windows, window{burst, span + span/margin})
	}
	return r, nil
}

// window: at most limit grants within any span (with its margin).
type window struct {
	limit int
	span  time.Duration
}

// nextLocked is the earliest time at or after t when n grants fit in
// every window, given the log (whose entries are all at or before it).
func (r *RateLimit) nextLocked(t time.Time, n int) time.Time {
	if last := len(r.log) - 1; last >= 0 && r.log[last].After(t) {
		t = r.log[last] // after every reservation
	}
	for changed := true; changed; {
		changed = false
		for _, w := range r.windows {
			// The entry that must have left the window: n fit once only
			// limit-n of the grants before t remain in it.
			if i := len(r.log) - (w.limit - n) - 1; i >= 0 && r.log[i].Add(w.span).After(t) {
				t, changed = r.log[i].Add(w.span), true
			}
		}
	}
	return t
}

// grantLocked records n grants at t (at or after every entry).
func (r *RateLimit) grantLocked(t time.Time, n int) {
	for range n {
		r.log = append(r.log, t)
	}
	if extra := len(r.log) - r.Rate; extra > 0 { // the last Rate judge every window
		r.log = append(r.log[:0], r.log[extra:]...)
	}
}

// fits checks that a batch of n can ever go out at once.
func (r *RateLimit) fits(n int) error {
	if n > r.Rate || (r.Burst > 0 && n > r.Burst) {
		return invalidArg("messages", "a batch of %d is more than the rate limit lets through at once", n)
	}
	return nil
}

// tryTake takes n grants (n fits) if they are free now; else it takes none and
// says how long until they are.
func (r *RateLimit) tryTake(n int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if next := r.nextLocked(now, n); next.After(now) {
		return next.Sub(now)
	}
	r.grantLocked(now, n)
	return 0
}

// reserve takes the next grant the budget allows, now or later, and
// returns when it is: for control frames, which never wait behind data.
func (r *RateLimit) reserve() time.Time { return r.reserveFrom(time.Now()) }

// reserveFrom is reserve for a grant not before t (a dial after its
// backoff delay).
func (r *RateLimit) reserveFrom(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.After(t) {
		t = now
	}
	t = r.nextLocked(t, 1)
	r.grantLocked(t, 1)
	return t
}

// take waits until n grants are free and takes them: at once, or with
// wait up to limit (0: no limit) or until ctx ends. A RateLimited error
// says how long it would have taken.
func (r *RateLimit) take(ctx context.Context, n int, wait bool, limit time.Duration, op string) error {
	if err := r.fits(n); err != nil {
		return err
	}
	if d := r.tryTake(n); d > 0 {
		return r.await(ctx, n, d, wait, limit, op)
	}
	return nil
}

// await is take after a first try found no room for d: it waits (with
// wait) and tries again, until the grants are taken, limit passes or ctx
// ends.
func (r *RateLimit) await(ctx context.Context, n int, d time.Duration, wait bool, limit time.Duration, op string) error {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for ; d > 0; d = r.tryTake(n) {
		if !wait || (!deadline.IsZero() && time.Now().Add(d).After(deadline)) {
			return rateLimited(op, d)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return &Error{Code: CodeClosed, Op: op, Err: ctx.Err()}
		}
	}
	return nil
}

func rateLimited(op string, d time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Op: op, RetryAfter: d,
		Err: fmt.Errorf("the rate limit has no room for another %.3f s", max(d.Seconds(), 0.001))}
}
