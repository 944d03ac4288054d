package core

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Signal is told when the queue becomes non-empty (Set) and empty (Clear),
// under the queue's lock, so a level-triggered waiter (an eventfd) is
// readable exactly while events are waiting.
type Signal interface {
	Set()
	Clear()
}

// Overflow is what the queue does with a message when it is full.
type Overflow int

// The overflow policies.
const (
	// OverflowBlock stops reading until there is room: TCP pushes back on
	// the server and nothing is lost.
	OverflowBlock Overflow = iota
	// OverflowDropOldest drops the oldest queued message: keep the freshest
	// data (order books, tickers).
	OverflowDropOldest
	// OverflowDropNewest drops the incoming message: keep what is queued.
	OverflowDropNewest
	// OverflowClose fails the connection with CodeQueueFull (close 1008)
	// and lets the reconnect policy take over.
	OverflowClose
)

var overflowNames = [...]string{"block", "drop_oldest", "drop_newest", "close"}

func (o Overflow) String() string {
	if o >= 0 && int(o) < len(overflowNames) {
		return overflowNames[o]
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// ParseOverflow reads a policy by name.
func ParseOverflow(name string) (Overflow, error) {
	for i, n := range overflowNames {
		if n == name {
			return Overflow(i), nil
		}
	}
	return 0, invalidArg("overflow", "must be one of block, drop_oldest, drop_newest, close; got %q", name)
}

var errQueueOverflow = &Error{Code: CodeQueueFull, Op: "read", Err: errors.New("the inbound queue is full (overflow=close)")}

// Warnings about the queue, rate-limited to one per kind per warnEvery.
const (
	WarnDrops     = 1 // messages are being dropped; b = drops since the last warning
	WarnHighWater = 2 // the queue passed highWater of its bounds; b = depth
	warnEvery     = time.Second
	highWater     = 0.8 // warn above this fraction of max_queue or max_queue_bytes
	lowWater      = 0.5 // re-arm the high-water warning below this
)

// queue is the bounded inbound event queue between the reader goroutine and
// the consumer. Messages count against max and maxBytes; lifecycle events
// do not, so the terminal EventClosed can always be delivered (they are few:
// one or two per connection, and warnings are rate-limited).
type queue struct {
	mu       sync.Mutex
	items    []Event // items[head:] are waiting
	head     int
	messages int // message events waiting
	bytes    int64
	max      int
	maxBytes int64
	policy   Overflow
	highMark int
	dropped  int64
	refusing bool          // after a local close: messages are dropped, not queued
	closed   bool          // no more events will come
	done     chan struct{} // closed with closed

	// Warning state.
	lastDropWarn, lastHighWarn time.Time
	dropsUnreported            int64
	highWarned                 bool

	// notEmpty and notFull hold one token each; a waiter that consumes a
	// token and leaves work behind passes it on.
	notEmpty chan struct{}
	notFull  chan struct{}

	signal Signal // may be nil
	notify func() // called without the lock when the queue becomes non-empty
}

func newQueue(max int, maxBytes int64, policy Overflow) *queue {
	return &queue{
		max:      max,
		maxBytes: maxBytes,
		policy:   policy,
		done:     make(chan struct{}),
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}, 1),
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fitsLocked: a message fits if the queue holds none (a single message is
// bounded by max_message_size alone) or both bounds leave room for it.
func (q *queue) fitsLocked(ev *Event) bool {
	return q.messages == 0 || (q.messages < q.max && q.bytes+int64(len(ev.Data)) <= q.maxBytes)
}

// tryPut queues a message if there is room, applying the overflow policy
// when there is none. wait reports that the policy is to block: put must
// wait. err is errQueueOverflow under OverflowClose.
func (q *queue) tryPut(ev Event) (ok, wait bool, err error) {
	q.mu.Lock()
	switch {
	case q.refusing || q.closed:
		q.unlockNotify(q.dropLocked(1))
		return false, false, nil
	case q.fitsLocked(&ev):
		q.unlockNotify(q.pushLocked(ev))
		return true, false, nil
	}
	switch q.policy {
	case OverflowDropNewest:
		q.unlockNotify(q.dropLocked(1))
		return false, false, nil
	case OverflowDropOldest:
		for !q.fitsLocked(&ev) && q.evictOldestLocked() {
		}
		q.unlockNotify(q.pushLocked(ev))
		return true, false, nil
	case OverflowClose:
		q.mu.Unlock()
		return false, false, errQueueOverflow
	}
	q.mu.Unlock()
	return false, true, nil
}

// put queues a message under OverflowBlock, waiting while the queue is
// full. It returns false when the message was not queued: the queue
// refuses, is closed, or stop was closed.
func (q *queue) put(ev Event, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.refusing || q.closed {
			q.unlockNotify(q.dropLocked(1))
			return false
		}
		if q.fitsLocked(&ev) {
			q.unlockNotify(q.pushLocked(ev))
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-stop:
			return false
		case <-q.done:
			return false
		}
	}
}

// putEvent queues a lifecycle event; it never blocks. It is refused only
// after close.
func (q *queue) putEvent(ev Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.unlockNotify(q.pushLocked(ev))
}

// pushLocked appends ev and reports whether the queue was empty before.
func (q *queue) pushLocked(ev Event) (wasEmpty bool) {
	wasEmpty = q.head == len(q.items)
	q.items = append(q.items, ev)
	if ev.isMessage() {
		q.messages++
		q.bytes += int64(len(ev.Data))
		q.highMark = max(q.highMark, q.messages)
		q.checkHighWaterLocked()
	}
	if wasEmpty && q.signal != nil {
		q.signal.Set()
	}
	return wasEmpty
}

// unlockNotify unlocks and, if the queue just became non-empty, wakes a
// waiting consumer and calls notify, without the lock.
func (q *queue) unlockNotify(becameReady bool) {
	notify := q.notify
	q.mu.Unlock()
	if becameReady {
		poke(q.notEmpty)
		if notify != nil {
			notify()
		}
	}
}

// evictOldestLocked removes the oldest queued message; false if none.
func (q *queue) evictOldestLocked() bool {
	for i := q.head; i < len(q.items); i++ {
		if !q.items[i].isMessage() {
			continue // lifecycle events are never dropped
		}
		q.messages--
		q.bytes -= int64(len(q.items[i].Data))
		if i == q.head {
			q.items[i] = Event{}
			q.head++
		} else {
			copy(q.items[i:], q.items[i+1:])
			q.items[len(q.items)-1] = Event{}
			q.items = q.items[:len(q.items)-1]
		}
		q.dropLocked(1)
		return true
	}
	return false
}

// dropLocked counts n dropped messages and warns, at most once per
// warnEvery, when drops start or go on. It reports whether the warning
// made the queue non-empty.
func (q *queue) dropLocked(n int64) (becameReady bool) {
	q.dropped += n
	if q.refusing || q.closed {
		return false // after a local close nobody is listening
	}
	q.dropsUnreported += n
	if now := time.Now(); now.Sub(q.lastDropWarn) >= warnEvery {
		q.lastDropWarn = now
		msg := fmt.Sprintf("inbound queue full (overflow=%s): %d messages dropped", q.policy, q.dropsUnreported)
		becameReady = q.pushLocked(Event{Kind: EventWarning, Runes: WarnDrops, Data: []byte(msg), Count: q.dropsUnreported})
		q.dropsUnreported = 0
	}
	return becameReady
}

// checkHighWaterLocked warns once when the queue passes the high-water
// mark, re-armed when it drains below the low-water mark.
func (q *queue) checkHighWaterLocked() {
	high := float64(q.messages) >= highWater*float64(q.max) || float64(q.bytes) >= highWater*float64(q.maxBytes)
	if !high || q.highWarned || q.messages < 2 {
		return
	}
	if now := time.Now(); now.Sub(q.lastHighWarn) >= warnEvery {
		q.highWarned, q.lastHighWarn = true, now
		msg := fmt.Sprintf("inbound queue above %.0f%%: %d messages, %d bytes waiting", highWater*100, q.messages, q.bytes)
		q.items = append(q.items, Event{Kind: EventWarning, Runes: WarnHighWater, Data: []byte(msg), Count: int64(q.messages)})
	}
}

// take waits up to timeout for events and moves up to len(dst) of them into
// dst, stopping before the first whose data would push the total past
// maxBytes. If that first event alone is too big, it returns n == 0 and its
// size in need. closed reports a closed queue with nothing left.
func (q *queue) take(dst []Event, maxBytes int, timeout time.Duration) (n, need int, closed bool) {
	if !q.wait(timeout) {
		return 0, 0, q.isDrained()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	size := 0
	for n < len(dst) && q.head < len(q.items) {
		ev := &q.items[q.head]
		if size+len(ev.Data) > maxBytes {
			if n == 0 {
				need = len(ev.Data)
			}
			break
		}
		size += len(ev.Data)
		dst[n] = *ev
		*ev = Event{}
		q.head++
		n++
		if dst[n-1].isMessage() {
			q.messages--
			q.bytes -= int64(len(dst[n-1].Data))
		}
	}
	q.compactLocked()
	q.afterTakeLocked()
	return n, need, n == 0 && need == 0 && q.closed
}

func (q *queue) afterTakeLocked() {
	if q.head < len(q.items) {
		poke(q.notEmpty)
	} else if q.signal != nil {
		q.signal.Clear()
	}
	if q.messages < q.max {
		poke(q.notFull)
	}
	if float64(q.messages) < lowWater*float64(q.max) && float64(q.bytes) < lowWater*float64(q.maxBytes) {
		q.highWarned = false
	}
}

// compactLocked reuses the slice once the consumed prefix dominates it.
func (q *queue) compactLocked() {
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		k := copy(q.items, q.items[q.head:])
		clear(q.items[k:])
		q.items, q.head = q.items[:k], 0
	}
}

// wait blocks until an event is waiting, the queue is closed, or timeout.
func (q *queue) wait(timeout time.Duration) bool {
	if q.ready() {
		return true
	}
	if timeout <= 0 {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-q.notEmpty:
		case <-q.done:
		case <-t.C:
			return q.ready()
		}
		if q.ready() {
			return true
		}
		if q.isDrained() {
			return false
		}
	}
}

func (q *queue) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head < len(q.items)
}

func (q *queue) isDrained() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && q.head == len(q.items)
}

// refuse makes put drop messages from now on (a local close: nobody will
// read them) and releases a reader blocked on a full queue.
func (q *queue) refuse() {
	q.mu.Lock()
	q.refusing = true
	q.mu.Unlock()
	poke(q.notFull)
}

// close ends the queue: no more events; waiters wake up. Idempotent.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}

// setSignal installs s (nil removes it) and brings it to the current level.
func (q *queue) setSignal(s Signal) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.signal = s
	if s == nil {
		return
	}
	if q.head < len(q.items) {
		s.Set()
	} else {
		s.Clear()
	}
}

func (q *queue) setNotify(f func()) {
	q.mu.Lock()
	q.notify = f
	q.mu.Unlock()
}

// depth returns the messages and bytes waiting, the high-water mark and
// the messages dropped so far.
func (q *queue) depth() (messages int, bytes int64, high int, dropped int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.messages, q.bytes, q.highMark, q.dropped
}
