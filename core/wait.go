package core

import "time"

// waitFor waits up to timeout (0: only checks) until ready, woken by tokens
// on wake; it gives up early once over (closed, nothing left) is true.
// wake holds one token; a waiter that takes it and leaves work behind
// passes it on (see poke), so one token serves any number of waiters.
func waitFor(ready, over func() bool, wake chan struct{}, timeout time.Duration) bool {
	if ready() {
		return true
	}
	if timeout <= 0 || over() {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-wake:
		case <-t.C:
			return ready()
		}
		if ready() {
			return true
		}
		if over() {
			return false
		}
	}
}
