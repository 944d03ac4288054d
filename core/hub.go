package core

import (
	"errors"
	"sync"
	"time"
)

// Hub gathers the events of many clients into one stream, so that one
// thread (or one event loop) waits on one wakeup and polls many clients in
// one call. A member either observes its client -- the hub gets a copy of
// each lifecycle event and the header requests, while messages stay in the
// client's queue for its own consumer -- or consumes it: the client's whole
// event stream goes through the hub.
//
// A member's events are handed out in batches of at most perMember events,
// members taking turns, and a member whose batch was handed out gets no
// more until Ack: the consumer runs its callbacks in order, and a member
// that floods holds up the others by at most one batch.
type Hub struct {
	mu       sync.Mutex
	members  map[uint32]*member
	next     uint32
	ready    []*member // members with events, each once, by stamp (arrival order)
	seq      uint64    // the last stamp given
	closed   bool
	notEmpty chan struct{}
	done     chan struct{}
	signal   Signal
	raised   bool // what the signal was last set to
}

type memberState int

const (
	memberIdle  memberState = iota // nothing to hand out
	memberReady                    // in Hub.ready
	memberBusy                     // its batch is out, until Ack
	memberGone                     // detached
)

// member is a client's place in a hub.
type member struct {
	hub     *Hub
	id      uint32
	client  *Client
	consume bool

	// Guarded by hub.mu.
	state memberState
	stamp uint64  // when its oldest event not handed out arrived (0: none waits)
	inbox []Event // lifecycle copies (observers) and header requests
	lost  int64   // inbox events dropped past maxLifecycle
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{members: map[uint32]*member{}, next: 1, notEmpty: make(chan struct{}, 1), done: make(chan struct{})}
}

var errHubClosed = &Error{Code: CodeClosed, Op: "hub", Err: errors.New("the hub is closed")}

// Attach makes c a member, observing or consuming (see Hub), and returns
// its id, which tags its events in Poll. Attach before Start, so that no
// event is missed. A client has one observer and one consumer at most; a
// consumer that comes first observes too (it answers the header requests;
// the lifecycle reaches it through the queue).
func (h *Hub) Attach(c *Client, consume bool) (uint32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, errHubClosed
	}
	m := &member{hub: h, id: h.next, client: c, consume: consume}
	if consume {
		if !c.consumer.CompareAndSwap(nil, m) {
			return 0, invalidArg("hub", "the connection has a consumer already")
		}
		c.observer.CompareAndSwap(nil, m)
	} else if !c.observer.CompareAndSwap(nil, m) {
		return 0, invalidArg("hub", "the connection has an observer already")
	}
	h.next++
	h.members[m.id] = m
	if consume {
		c.q.setWatcher(func() { h.wake(m) })
		if c.q.ready() {
			h.readyLocked(m)
		}
	}
	return m.id, nil
}

// Detach removes member id; its client's events stay in its own queue.
func (h *Hub) Detach(id uint32) {
	h.mu.Lock()
	m, ok := h.members[id]
	if ok {
		h.detachLocked(m)
	}
	h.mu.Unlock()
}

// DetachClient removes c from the hubs it is in.
func DetachClient(c *Client) {
	for _, m := range []*member{c.consumer.Load(), c.observer.Load()} {
		if m != nil {
			m.hub.Detach(m.id)
		}
	}
}

func (h *Hub) detachLocked(m *member) {
	delete(h.members, m.id)
	if m.state == memberReady {
		h.ready = deleteMember(h.ready, m)
		h.levelLocked()
	}
	m.state, m.inbox = memberGone, nil
	m.client.observer.CompareAndSwap(m, nil)
	m.client.consumer.CompareAndSwap(m, nil)
	if m.consume {
		m.client.q.setWatcher(nil)
		m.client.q.release()
	}
}

func deleteMember(ms []*member, m *member) []*member {
	for i := range ms {
		if ms[i] == m {
			return append(ms[:i], ms[i+1:]...)
		}
	}
	return ms
}

// lifecycle receives a copy of one of the client's lifecycle events. A
// consumer gets them through the queue instead.
func (m *member) lifecycle(ev Event) {
	if !m.consume {
		m.control(ev)
	}
}

// control hands the hub an event for this member's inbox.
func (m *member) control(ev Event) {
	h := m.hub
	h.mu.Lock()
	if m.state == memberGone {
		h.mu.Unlock()
		return
	}
	if len(m.inbox) >= maxLifecycle {
		m.dropOldestLocked()
	}
	m.inbox = append(m.inbox, ev)
	h.stampLocked(m)
	woke := h.readyLocked(m)
	h.mu.Unlock()
	if woke {
		poke(h.notEmpty)
	}
}

// dropOldestLocked makes room in a full inbox (see maxLifecycle) without
// losing what the observer acts on: it drops the oldest news of a loss, an
// attempt or a warning; failing that, an open or a header request that a
// later one of its kind superseded (its connection or attempt is over).
// The end, the latest open and the latest header request stay.
func (m *member) dropOldestLocked() {
	drop := -1
	for i, ev := range m.inbox {
		if ev.Kind == EventDisconnected || ev.Kind == EventReconnecting || ev.Kind == EventWarning {
			drop = i
			break
		}
	}
	if drop < 0 {
		drop = m.supersededLocked()
	}
	if drop >= 0 {
		m.inbox = append(m.inbox[:drop], m.inbox[drop+1:]...)
		m.lost++
	}
}

// supersededLocked is the index of the oldest open or header request with
// a later one of its kind, or -1.
func (m *member) supersededLocked() int {
	latest := map[EventKind]int{}
	for i, ev := range m.inbox {
		latest[ev.Kind] = i
	}
	for i, ev := range m.inbox {
		if (ev.Kind == EventOpen || ev.Kind == EventHeaders) && latest[ev.Kind] != i {
			return i
		}
	}
	return -1
}

// wake is the queue watcher of a consuming member.
func (h *Hub) wake(m *member) {
	h.mu.Lock()
	woke := false
	if m.state != memberGone {
		h.stampLocked(m) // also while its batch is out: it keeps its place in the order
		woke = h.readyLocked(m)
	}
	h.mu.Unlock()
	if woke {
		poke(h.notEmpty)
	}
}

// stampLocked marks when a member's oldest waiting event arrived, so that
// members are handed out in the order their events arrived, also when one
// of them got events while its batch was out.
func (h *Hub) stampLocked(m *member) {
	if m.stamp == 0 {
		h.seq++
		m.stamp = h.seq
	}
}

// readyLocked queues an idle member in stamp order (almost always at the
// end); it reports whether the hub went from nothing to hand out to
// something.
func (h *Hub) readyLocked(m *member) bool {
	if m.state != memberIdle {
		return false
	}
	h.stampLocked(m)
	m.state = memberReady
	i := len(h.ready)
	h.ready = append(h.ready, m)
	for ; i > 0 && h.ready[i-1].stamp > m.stamp; i-- {
		h.ready[i] = h.ready[i-1]
	}
	h.ready[i] = m
	h.levelLocked()
	return len(h.ready) == 1
}

// levelLocked sets the signal to whether members are ready, touching it
// (a system call) only when that changes.
func (h *Hub) levelLocked() {
	want := len(h.ready) > 0
	if h.signal == nil || want == h.raised {
		return
	}
	h.raised = want
	if want {
		h.signal.Set()
	} else {
		h.signal.Clear()
	}
}

// Poll waits up to timeout (0: only checks) for members with events and
// moves up to len(dst) events into dst, at most perMember from each member
// and as many as fit in maxBytes of data; src[i] is the member of dst[i].
// If the first event alone needs more than maxBytes, it returns need.
// PollWait is Poll that waits in poll(2) on signal, a descriptor readable
// while members have events (the hub's Signal): see pollFDs.
func (h *Hub) PollWait(dst []Event, src []uint32, maxBytes, perMember int, timeout time.Duration, signal int) (n, need int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		n, need, err = h.Poll(dst, src, maxBytes, perMember, 0)
		left := time.Until(deadline)
		if n > 0 || need > 0 || err != nil || left <= 0 {
			return n, need, err
		}
		pollFDs([]int{signal}, left)
	}
}

func (h *Hub) Poll(dst []Event, src []uint32, maxBytes, perMember int, timeout time.Duration) (n, need int, err error) {
	if !h.wait(timeout) {
		if h.isClosed() {
			return 0, 0, errHubClosed
		}
		return 0, 0, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	size := 0
	for len(h.ready) > 0 && n < len(dst) && need == 0 {
		m := h.ready[0]
		limit := min(n+perMember, len(dst))
		k, sz, needed := m.takeLocked(dst[n:limit], maxBytes-size)
		for i := n; i < n+k; i++ {
			src[i] = m.id
		}
		if k == 0 && needed > 0 {
			if n == 0 {
				need = needed
			}
			break
		}
		n, size = n+k, size+sz
		h.ready = h.ready[1:]
		m.state, m.stamp = memberBusy, 0
		if k == 0 { // nothing after all: a drained queue
			m.state = memberIdle
		} else if m.hasMore() { // the rest of a flood arrived before anything stamped from now on
			h.stampLocked(m)
		}
	}
	h.levelLocked()
	if len(h.ready) > 0 {
		poke(h.notEmpty)
	}
	return n, need, nil
}

// takeLocked moves the member's next events into dst: its inbox, then,
// for a consumer, its queue.
func (m *member) takeLocked(dst []Event, maxBytes int) (n, size, need int) {
	for n < len(dst) && len(m.inbox) > 0 {
		ev := m.inbox[0]
		if size+len(ev.Data) > maxBytes {
			return n, size, len(ev.Data)
		}
		dst[n], size = ev, size+len(ev.Data)
		m.inbox[0] = Event{}
		m.inbox = m.inbox[1:]
		n++
	}
	if m.consume && n < len(dst) {
		q := m.client.q
		q.mu.Lock()
		k, needed := q.takeLocked(dst[n:], maxBytes-size)
		q.mu.Unlock()
		for _, ev := range dst[n : n+k] {
			size += len(ev.Data)
		}
		n += k
		if k == 0 {
			need = needed
		}
	}
	return n, size, need
}

// Ack tells the hub that the last batches of members ids were handled:
// their messages stop counting against their clients' bounds, and they
// may have more.
func (h *Hub) Ack(ids ...uint32) {
	h.mu.Lock()
	woke := false
	for _, id := range ids {
		woke = h.ackLocked(id) || woke
	}
	h.mu.Unlock()
	if woke {
		poke(h.notEmpty)
	}
}

func (h *Hub) ackLocked(id uint32) bool {
	m, ok := h.members[id]
	if !ok || m.state != memberBusy {
		return false
	}
	m.state = memberIdle
	if m.consume {
		m.client.q.release()
	}
	if m.hasMore() {
		return h.readyLocked(m)
	}
	return false
}

// hasMore reports whether the member has events to hand out.
func (m *member) hasMore() bool {
	return len(m.inbox) > 0 || (m.consume && m.client.q.ready())
}

func (h *Hub) wait(timeout time.Duration) bool {
	return waitFor(h.hasReady, h.isClosed, h.notEmpty, timeout)
}

func (h *Hub) hasReady() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ready) > 0
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// SetSignal installs a level signal for "members have events".
func (h *Hub) SetSignal(s Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signal, h.raised = s, false
	if s != nil {
		s.Clear()
	}
	h.levelLocked()
}

// Len is the number of members.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.members)
}

// Close detaches every member and wakes a waiting Poll. Idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for _, m := range h.members {
		h.detachLocked(m)
	}
	h.signal = nil
	close(h.done)
	poke(h.notEmpty) // a waiting Poll sees the end
}
