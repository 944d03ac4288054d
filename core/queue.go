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

// Warnings about the queue. A warning waiting to be taken absorbs later
// ones of its kind, and a new one is raised at most once per warnEvery.
const (
	WarnDrops     = 1 // messages are being dropped; Count = drops since the last warning
	WarnHighWater = 2 // the queue passed highWater of its bounds; Count = depth
	warnEvery     = time.Second
	highWater     = 0.8 // warn above this fraction of max_queue or max_queue_bytes
	lowWater      = 0.5 // re-arm the high-water warning below this
)

// maxLifecycle bounds the lifecycle events waiting for a consumer that does
// not read: a flapping server costs three events per reconnect. Past it,
// the oldest ones but the end are dropped (and counted). The observer's
// inbox (hub.go) keeps the ones it acts on.
const maxLifecycle = 1024

// queue is the bounded inbound event queue between the reader goroutine and
// the consumer. Messages live in a ring, so taking and evicting one is O(1);
// lifecycle events live beside it, each marked with the number of messages
// that came before it, and are merged back in order when taken.
//
// The bounds count the messages queued and those of the batch the consumer
// took last: a consumer hands back its batch by coming back for more (the
// next take), so what the engine queues and what the consumer holds
// together stay within max_queue and max_queue_bytes.
type queue struct {
	mu sync.Mutex

	// Messages: ring[(head+i) % len(ring)] for i < n.
	ring  []message
	head  int
	n     int
	bytes int64
	gone  uint64 // messages that left the ring, taken or dropped

	// The consumer's last batch, still counted against the bounds.
	lentN     int
	lentBytes int64

	// Lifecycle events, oldest first (life[lifeHead:]).
	life     []lifeEvent
	lifeHead int
	lifeLost int64 // lifecycle events dropped past maxLifecycle

	max      int
	maxBytes int64
	policy   Overflow
	highMark int
	peak     int // the most messages queued since the queue was last empty with a big ring
	dropped  int64
	refusing bool          // after a local close: messages are dropped, not queued
	closed   bool          // no more events will come
	done     chan struct{} // closed with closed

	// Warning state.
	lastDropWarn, lastHighWarn time.Time
	pendingWarn                [3]int // index into life of an untaken warning of each kind, -1 if none
	unreported                 int64  // drops not yet in a warning
	highWarned                 bool

	// notEmpty and notFull hold one token each; a waiter that consumes a
	// token and leaves work behind passes it on.
	notEmpty chan struct{}
	notFull  chan struct{}

	signal  Signal // may be nil
	held    bool   // a consumer fills the queue on its own thread (PollFast): the signal waits (holdSignal)
	raised  bool   // the signal is set: Clear has work to do (one syscall less per poll otherwise)
	notify  func() // called without the lock when the queue becomes non-empty
	watcher func() // the same, for a hub that consumes this queue

	// The observer's own copies of the warnings (see Client.emit), at most
	// one per kind per warnEvery, given to observe without the lock.
	observe        func(Event)
	observed       []Event
	obsDrops       int64
	obsLastDropped time.Time
}

// message is a queued message: smaller than an Event, since a queue may
// hold millions.
type message struct {
	data  []byte
	runes int
	text  bool
	at    int64 // Event.Time
}

func (m *message) event() Event {
	if m.text {
		return Event{Kind: EventText, Data: m.data, Runes: m.runes, Time: m.at}
	}
	return Event{Kind: EventBinary, Data: m.data, Time: m.at}
}

// lifeEvent is a lifecycle event that comes after the first at messages.
type lifeEvent struct {
	at uint64
	ev Event
}

func newQueue(max int, maxBytes int64, policy Overflow) *queue {
	return &queue{
		max:         max,
		maxBytes:    maxBytes,
		policy:      policy,
		done:        make(chan struct{}),
		notEmpty:    make(chan struct{}, 1),
		notFull:     make(chan struct{}, 1),
		pendingWarn: [3]int{-1, -1, -1},
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pushed is the number of messages ever queued.
func (q *queue) pushedLocked() uint64 { return q.gone + uint64(q.n) }

// fitsLocked: a message fits if nothing is counted (a single message is
// bounded by max_message_size alone) or both bounds leave room for it.
func (q *queue) fitsLocked(size int) bool {
	count, bytes := q.n+q.lentN, q.bytes+q.lentBytes
	return count == 0 || (count < q.max && bytes+int64(size) <= q.maxBytes)
}

// hasRoom reports whether a message of size bytes would be queued now
// without waiting or dropping (the fast path reads only what fits).
func (q *queue) hasRoom(size int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.refusing && !q.closed && q.fitsLocked(size)
}

// tryPut queues a message if there is room, applying the overflow policy
// when there is none. wait reports that the policy is to block: put must
// wait. err is errQueueOverflow under OverflowClose.
func (q *queue) tryPut(ev Event) (ok, wait bool, err error) {
	q.mu.Lock()
	ok, wait, ready, err := q.tryPutLocked(ev)
	q.unlockNotify(ready)
	return ok, wait, err
}

// tryPutMany is tryPut for messages in a row, under one lock and with one
// notification: it stops at the first that must wait or fails, and
// reports how many it handled (queued or dropped by the policy).
func (q *queue) tryPutMany(evs []Event) (handled int, wait bool, err error) {
	q.mu.Lock()
	becameReady := false
	for _, ev := range evs {
		_, w, ready, e := q.tryPutLocked(ev)
		becameReady = becameReady || ready
		if w || e != nil {
			wait, err = w, e
			break
		}
		handled++
	}
	q.unlockNotify(becameReady)
	return handled, wait, err
}

func (q *queue) tryPutLocked(ev Event) (ok, wait, becameReady bool, err error) {
	switch {
	case q.refusing || q.closed:
		q.dropLocked(1)
		return false, false, false, nil
	case q.fitsLocked(len(ev.Data)):
		return true, false, q.pushLocked(ev), nil
	}
	switch q.policy {
	case OverflowDropNewest:
		return false, false, q.dropLocked(1), nil
	case OverflowDropOldest:
		for !q.fitsLocked(len(ev.Data)) && q.n > 0 {
			q.evictOldestLocked()
		}
		if !q.fitsLocked(len(ev.Data)) { // the consumer's batch holds the whole bound
			return false, false, q.dropLocked(1), nil
		}
		return true, false, q.pushLocked(ev), nil
	case OverflowClose:
		return false, false, false, errQueueOverflow
	}
	return false, true, false, nil
}

// room is how many messages, and bytes, fit now without waiting or
// dropping.
func (q *queue) room() (n int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.refusing || q.closed {
		return 0, 0
	}
	return max(q.max-q.n-q.lentN, 0), max(q.maxBytes-q.bytes-q.lentBytes, 0)
}

// put queues a message under OverflowBlock, waiting while the queue is
// full. It returns false when the message was not queued: the queue
// refuses, is closed, or stop was closed.
func (q *queue) put(ev Event, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.refusing || q.closed {
			q.dropLocked(1)
			q.unlockNotify(false)
			return false
		}
		if q.fitsLocked(len(ev.Data)) {
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
	q.unlockNotify(q.pushLifeLocked(ev))
}

func (q *queue) emptyLocked() bool { return q.n == 0 && q.lifeHead == len(q.life) }

// pushLocked appends a message and reports whether the queue was empty.
func (q *queue) pushLocked(ev Event) (wasEmpty bool) {
	wasEmpty = q.emptyLocked()
	if q.n == len(q.ring) {
		q.growLocked()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = message{data: ev.Data, runes: ev.Runes, text: ev.Kind == EventText, at: ev.Time}
	q.n++
	q.bytes += int64(len(ev.Data))
	q.highMark = max(q.highMark, q.n+q.lentN)
	q.peak = max(q.peak, q.n)
	q.checkHighWaterLocked()
	q.setLocked(wasEmpty)
	return wasEmpty
}

// growLocked doubles the ring (up to max_queue): memory follows the depth
// actually reached, not the bound.
func (q *queue) growLocked() {
	size := min(max(2*len(q.ring), 16), max(q.max, 1))
	if size <= q.n {
		size = q.n + 1 // the one message allowed past a full queue
	}
	ring := make([]message, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// pushLifeLocked appends a lifecycle event and reports whether the queue
// was empty. (Warnings are coalesced by their callers.)
func (q *queue) pushLifeLocked(ev Event) (wasEmpty bool) {
	wasEmpty = q.emptyLocked()
	at := q.pushedLocked()
	if len(q.life)-q.lifeHead >= maxLifecycle {
		q.dropLifeLocked()
	}
	q.life = append(q.life, lifeEvent{at: at, ev: ev})
	q.setLocked(wasEmpty)
	return wasEmpty
}

// dropLifeLocked drops the oldest lifecycle event that may be dropped.
func (q *queue) dropLifeLocked() {
	for i := q.lifeHead; i < len(q.life); i++ {
		if !q.life[i].ev.droppable() {
			continue
		}
		copy(q.life[i:], q.life[i+1:])
		q.life = q.life[:len(q.life)-1]
		q.lifeLost++
		q.reindexWarningsLocked()
		return
	}
}

func (q *queue) reindexWarningsLocked() {
	q.pendingWarn = [3]int{-1, -1, -1}
	for i := q.lifeHead; i < len(q.life); i++ {
		if ev := &q.life[i].ev; ev.Kind == EventWarning {
			q.pendingWarn[ev.Runes] = i
		}
	}
}

func (q *queue) setLocked(wasEmpty bool) {
	if wasEmpty && q.signal != nil && !q.held {
		q.raiseLocked()
	}
}

func (q *queue) raiseLocked() {
	q.signal.Set()
	q.raised = true
}

// holdSignal keeps the signal from being set while the consumer fills the
// queue on its own thread and takes what it put (PollFast): it is there,
// so setting the signal and clearing it would be two syscalls for nobody.
// releaseSignal sets it if events are left.
func (q *queue) holdSignal() {
	q.mu.Lock()
	q.held = true
	q.mu.Unlock()
}

func (q *queue) releaseSignal() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = false
	if !q.emptyLocked() && q.signal != nil {
		q.raiseLocked()
	}
}

// unlockNotify unlocks and, if the queue just became non-empty, wakes a
// waiting consumer and calls the hooks, without the lock.
func (q *queue) unlockNotify(becameReady bool) {
	notify, watcher, observe, observed := q.notify, q.watcher, q.observe, q.observed
	q.observed = nil
	q.mu.Unlock()
	for _, ev := range observed {
		if observe != nil {
			observe(ev)
		}
	}
	if becameReady {
		poke(q.notEmpty)
		if notify != nil {
			notify()
		}
		if watcher != nil {
			watcher()
		}
	}
}

// evictOldestLocked drops the oldest queued message.
func (q *queue) evictOldestLocked() {
	q.bytes -= int64(len(q.ring[q.head].data))
	q.ring[q.head] = message{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.gone++
	q.dropLocked(1)
}

// dropLocked counts n dropped messages and warns when drops start or go on.
// It reports whether the warning made the queue non-empty.
func (q *queue) dropLocked(n int64) (becameReady bool) {
	q.dropped += n
	if q.refusing || q.closed {
		return false // after a local close nobody is listening
	}
	q.observeDropsLocked(n)
	if i := q.pendingWarn[WarnDrops]; i >= 0 {
		q.life[i].ev.Count += n // its message is written when it is taken
		return false
	}
	now := time.Now()
	if now.Sub(q.lastDropWarn) < warnEvery {
		q.unreported += n
		return false
	}
	q.lastDropWarn = now
	count := q.unreported + n
	q.unreported = 0
	return q.warnLocked(WarnDrops, count, "")
}

// observeDropsLocked gives the observer its own drops warning, at most one
// per warnEvery: the one in the stream may wait for a consumer that is not
// reading, and the observer logs drops as they happen.
func (q *queue) observeDropsLocked(n int64) {
	q.obsDrops += n
	if now := time.Now(); q.observe != nil && now.Sub(q.obsLastDropped) >= warnEvery {
		q.obsLastDropped = now
		q.observed = append(q.observed, Event{Kind: EventWarning, Runes: WarnDrops, Count: q.obsDrops, Data: q.dropMessage(q.obsDrops), Time: time.Now().UnixNano()})
		q.obsDrops = 0
	}
}

// dropMessage is the text of a drops warning.
func (q *queue) dropMessage(count int64) []byte {
	return fmt.Appendf(nil, "inbound queue full (overflow=%s): %d messages dropped", q.policy, count)
}

// warnLocked queues a warning of kind and remembers it as pending.
func (q *queue) warnLocked(kind int, count int64, msg string) bool {
	becameReady := q.pushLifeLocked(Event{Kind: EventWarning, Runes: kind, Data: []byte(msg), Count: count, Time: time.Now().UnixNano()})
	q.pendingWarn[kind] = len(q.life) - 1
	return becameReady
}

// checkHighWaterLocked warns once when the queue passes the high-water
// mark, re-armed when it drains below the low-water mark.
func (q *queue) checkHighWaterLocked() {
	count, bytes := q.n+q.lentN, q.bytes+q.lentBytes
	high := float64(count) >= highWater*float64(q.max) || float64(bytes) >= highWater*float64(q.maxBytes)
	if !high || q.highWarned || count < 2 || q.pendingWarn[WarnHighWater] >= 0 {
		return
	}
	if now := time.Now(); now.Sub(q.lastHighWarn) >= warnEvery {
		q.highWarned, q.lastHighWarn = true, now
		msg := fmt.Sprintf("inbound queue above %.0f%%: %d messages, %d bytes waiting", highWater*100, count, bytes)
		q.warnLocked(WarnHighWater, int64(count), msg)
		if q.observe != nil {
			q.observed = append(q.observed, Event{Kind: EventWarning, Runes: WarnHighWater, Count: int64(count), Data: []byte(msg), Time: time.Now().UnixNano()})
		}
	}
}

// take waits up to timeout for events and moves up to len(dst) of them into
// dst, stopping before the first whose data would push the total past
// maxBytes. If that first event alone is too big, it returns n == 0 and its
// size in need. closed reports a closed queue with nothing left. The
// previous batch stops counting against the bounds: the consumer is back.
func (q *queue) take(dst []Event, maxBytes int, timeout time.Duration) (n, need int, closed bool) {
	q.release()
	if !q.wait(timeout) {
		return 0, 0, q.isDrained()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n, need = q.takeLocked(dst, maxBytes)
	return n, need, n == 0 && need == 0 && q.closed
}

// takeLocked moves events into dst in the order they happened.
func (q *queue) takeLocked(dst []Event, maxBytes int) (n, need int) {
	size := 0
	for n < len(dst) {
		life, length, ok := q.peekLocked()
		if !ok {
			break
		}
		if size+length > maxBytes {
			if n == 0 {
				need = length
			}
			break
		}
		size += length
		if life {
			dst[n] = q.life[q.lifeHead].ev
			q.popLifeLocked()
		} else {
			dst[n] = q.ring[q.head].event()
			q.popMessageLocked()
		}
		n++
	}
	q.afterTakeLocked()
	return n, need
}

// peekLocked finds the next event in order -- a lifecycle event once every
// message before it has gone, else the oldest message -- and its size.
func (q *queue) peekLocked() (life bool, size int, ok bool) {
	if q.lifeHead < len(q.life) && q.life[q.lifeHead].at <= q.gone {
		ev := &q.life[q.lifeHead].ev
		if ev.Kind == EventWarning && ev.Runes == WarnDrops {
			ev.Data = q.dropMessage(ev.Count)
		}
		return true, len(ev.Data), true
	}
	if q.n > 0 {
		return false, len(q.ring[q.head].data), true
	}
	return false, 0, false
}

func (q *queue) popLifeLocked() {
	kind := q.life[q.lifeHead].ev
	if kind.Kind == EventWarning && q.pendingWarn[kind.Runes] == q.lifeHead {
		q.pendingWarn[kind.Runes] = -1
	}
	q.life[q.lifeHead] = lifeEvent{}
	q.lifeHead++
	if q.lifeHead == len(q.life) {
		q.life, q.lifeHead = q.life[:0], 0
		q.pendingWarn = [3]int{-1, -1, -1}
	}
}

func (q *queue) popMessageLocked() {
	size := int64(len(q.ring[q.head].data))
	q.ring[q.head] = message{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.gone++
	q.bytes -= size
	q.lentN++
	q.lentBytes += size
}

func (q *queue) afterTakeLocked() {
	if !q.emptyLocked() {
		poke(q.notEmpty)
	} else if q.signal != nil && q.raised {
		q.signal.Clear()
		q.raised = false
	}
	if q.n == 0 && len(q.ring) > 1024 {
		// Bursts are over once the last one reached a quarter of the
		// ring: give its memory back (but keep it through a flood).
		if 4*q.peak < len(q.ring) {
			q.ring, q.head = nil, 0
		}
		q.peak = 0
	}
}

// release ends the counting of the consumer's last batch.
func (q *queue) release() {
	q.mu.Lock()
	if q.lentN == 0 && q.lentBytes == 0 {
		q.mu.Unlock()
		return
	}
	q.lentN, q.lentBytes = 0, 0
	if float64(q.n) < lowWater*float64(q.max) && float64(q.bytes) < lowWater*float64(q.maxBytes) {
		q.highWarned = false
	}
	q.mu.Unlock()
	poke(q.notFull)
}

// wait blocks until an event is waiting, the queue is closed, or timeout.
// A timeout of 0 only checks.
func (q *queue) wait(timeout time.Duration) bool {
	return waitFor(q.ready, q.isDrained, q.notEmpty, timeout)
}

func (q *queue) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.emptyLocked()
}

func (q *queue) isDrained() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && q.emptyLocked()
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
		poke(q.notEmpty) // a waiter sees the end
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
	if !q.emptyLocked() {
		q.raiseLocked()
	} else {
		s.Clear()
		q.raised = false
	}
}

// setNotify installs f; if events wait already, f is called once now, so
// that one installed after the queue became non-empty is not left waiting.
func (q *queue) setNotify(f func()) {
	q.mu.Lock()
	q.notify = f
	waiting := !q.emptyLocked()
	q.mu.Unlock()
	if waiting && f != nil {
		f()
	}
}

func (q *queue) setWatcher(f func()) {
	q.mu.Lock()
	q.watcher = f
	q.mu.Unlock()
}

// depth returns the messages and bytes counted (queued and lent), the
// high-water mark, the messages dropped and the lifecycle events dropped.
func (q *queue) depth() (messages int, bytes int64, high int, dropped, lifeLost int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + q.lentN, q.bytes + q.lentBytes, q.highMark, q.dropped, q.lifeLost
}
