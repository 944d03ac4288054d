package core

import (
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

// queue is the bounded inbound event queue between the reader goroutine and
// the consumer. Messages count against max; lifecycle events do not, so the
// terminal EventClosed can always be delivered. While the queue is full the
// reader blocks in put: TCP pushes back on the server and nothing is lost.
type queue struct {
	mu       sync.Mutex
	items    []Event // items[head:] are waiting
	head     int
	messages int // message events waiting
	bytes    int64
	max      int
	highMark int
	refusing bool          // after a local close: messages are dropped, not queued
	closed   bool          // no more events will come
	done     chan struct{} // closed with closed

	// notEmpty and notFull hold one token each; a waiter that consumes a
	// token and leaves work behind passes it on.
	notEmpty chan struct{}
	notFull  chan struct{}

	signal Signal // may be nil
	notify func() // called without the lock when the queue becomes non-empty
}

func newQueue(max int) *queue {
	return &queue{
		max:      max,
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

// tryPut queues a message if there is room. full reports that there was
// none and put must wait; otherwise ok says whether it was queued.
func (q *queue) tryPut(ev Event) (ok, full bool) {
	q.mu.Lock()
	switch {
	case q.refusing || q.closed:
		q.mu.Unlock()
		return false, false
	case q.messages >= q.max:
		q.mu.Unlock()
		return false, true
	}
	q.appendLocked(ev)
	return true, false
}

// put queues a message, waiting while the queue is full. It returns false
// when the message was not queued because the queue refuses or is closed.
// stop aborts the wait.
func (q *queue) put(ev Event, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.refusing || q.closed {
			q.mu.Unlock()
			return false
		}
		if q.messages < q.max {
			q.appendLocked(ev)
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
	q.appendLocked(ev)
}

// appendLocked adds ev and unlocks; the notify callback runs unlocked.
func (q *queue) appendLocked(ev Event) {
	wasEmpty := q.head == len(q.items)
	q.items = append(q.items, ev)
	if ev.isMessage() {
		q.messages++
		q.bytes += int64(len(ev.Data))
		q.highMark = max(q.highMark, q.messages)
	}
	if wasEmpty && q.signal != nil {
		q.signal.Set()
	}
	notify := q.notify
	q.mu.Unlock()
	if wasEmpty {
		poke(q.notEmpty)
		if notify != nil {
			notify()
		}
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

// depth returns the messages and bytes waiting and the high-water mark.
func (q *queue) depth() (messages int, bytes int64, high int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.messages, q.bytes, q.highMark
}
