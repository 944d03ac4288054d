package core

import (
	"context"
	"testing"
	"time"
)

func mustRate(t *testing.T, n int, per time.Duration, burst int) *RateLimit {
	t.Helper()
	r, err := NewRateLimit(n, per, burst, false, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRateLimitWindowIsExact: rate grants at once, then none until the
// first leaves the window (per + 5%); never more than rate in any per.
func TestRateLimitWindowIsExact(t *testing.T) {
	r := mustRate(t, 5, 200*time.Millisecond, 0)
	for i := range 5 {
		if d := r.tryTake(1); d != 0 {
			t.Fatalf("grant %d waits %v", i, d)
		}
	}
	d := r.tryTake(1)
	if d < 200*time.Millisecond || d > 211*time.Millisecond {
		t.Fatalf("the 6th waits %v, want about 210 ms (+5 percent)", d)
	}
	if got := r.tryTake(1); got <= 0 {
		t.Fatal("a refused grant was taken after all")
	}
}

// TestRateLimitBurstSmooths: burst 2 of 10 per second: 2 at once, the 3rd
// after 200 ms (+5%).
func TestRateLimitBurstSmooths(t *testing.T) {
	r := mustRate(t, 10, time.Second, 2)
	if r.tryTake(2) != 0 {
		t.Fatal("the burst was refused")
	}
	if d := r.tryTake(1); d < 200*time.Millisecond || d > 211*time.Millisecond {
		t.Fatalf("the 3rd waits %v, want about 210 ms (+5 percent)", d)
	}
}

// TestRateLimitReservationGoesFirst: a control frame's reservation takes
// the next grant; a data send then waits until after it.
func TestRateLimitReservationGoesFirst(t *testing.T) {
	r := mustRate(t, 1, 100*time.Millisecond, 0)
	r.tryTake(1)
	at := r.reserve()
	if wait := time.Until(at); wait < 90*time.Millisecond {
		t.Fatalf("the reservation is in %v", wait)
	}
	if d := r.tryTake(1); time.Now().Add(d).Before(at.Add(100 * time.Millisecond)) {
		t.Fatalf("data would go %v from now, before the window after the reservation", d)
	}
}

// TestRateLimitTake: wait=false refuses with RetryAfter; wait=true within
// the limit waits; beyond it refuses at once; too big a batch is invalid.
func TestRateLimitTake(t *testing.T) {
	r := mustRate(t, 1, 50*time.Millisecond, 0)
	ctx := context.Background()
	if err := r.take(ctx, 1, false, 0, "send"); err != nil {
		t.Fatal(err)
	}
	err := r.take(ctx, 1, false, 0, "send")
	if e, ok := err.(*Error); !ok || e.Code != CodeRateLimited || e.RetryAfter <= 0 {
		t.Fatalf("got %v", err)
	}
	start := time.Now()
	if err := r.take(ctx, 1, true, time.Second, "send"); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if err := r.take(ctx, 1, true, time.Millisecond, "send"); CodeOf(err) != CodeRateLimited || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	if err := r.take(ctx, 2, true, 0, "send"); CodeOf(err) != CodeInvalidArgument {
		t.Fatalf("a batch of 2 under rate 1: %v", err)
	}
}

func TestNewRateLimitNamesTheParameter(t *testing.T) {
	for _, c := range []struct {
		n, burst int
		per      time.Duration
		name     string
	}{
		{0, 0, time.Second, "rate"}, {MaxRate + 1, 0, time.Second, "rate"},
		{5, 0, 0, "per"}, {5, 6, time.Second, "burst"}, {5, -1, time.Second, "burst"},
	} {
		_, err := NewRateLimit(c.n, c.per, c.burst, false, true)
		if e, ok := err.(*Error); !ok || e.Code != CodeInvalidArgument || e.Op != c.name {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
