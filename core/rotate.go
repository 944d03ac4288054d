package core

import (
	"bytes"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// Rotation, make-before-break: venues end connections after about a day,
// and a client that waits for it loses what arrives during the reconnect.
// Rotate opens a second connection (fresh headers, its own on_open),
// switches delivery to it once it delivers, then closes the old one with
// 1000. Both receive the same feed for a while, so:
//
//   - the old connection keeps delivering, and remembers a hash of each
//     message it delivers (a bounded window);
//   - the new one's messages are held from its first data message until
//     the old connection delivers that same message (it caught up: nothing
//     in between is lost) or catchUpFor passes;
//   - then delivery switches: the held messages the old one already
//     delivered are dropped as duplicates, the rest follow, and from then on
//     only the new connection's messages count (and the old one closes).
//
// A rotation that cannot open leaves the old connection serving and is
// tried again on the reconnect policy's backoff schedule.

// catchUpFor bounds how long the new connection's messages wait for the
// old one to deliver the same message (feeds that differ per connection
// never do).
const catchUpFor = time.Second

// maxHeld and maxSeen bound what a rotation keeps: held messages of the new
// connection, hashes of the old one's.
const (
	maxHeld = 1 << 14
	maxSeen = 1 << 16
)

var errRotated = errors.New("rotated: a newer connection took over")

// The phases of a rotation.
const (
	rotDialing  = iota // the new one is being dialled; the old one's messages are remembered already
	rotOverlap         // both open; the new one has delivered nothing
	rotCatchUp         // the new one's messages wait for the old one
	rotSwitched        // the new one delivers; the old one closes
)

type rotation struct {
	old, nu *conn
	num     int           // the new connection's number
	done    chan error    // the new connection's reader's result
	ready   bool          // the new connection's on_open returned (guarded by Client.mu)
	over    chan struct{} // closed when the switch happened

	mu           sync.Mutex
	phase        int
	seen         map[uint64]int // hashes of what the old one delivered in the overlap, and how often
	order        []uint64       // the same, oldest first, to forget beyond maxSeen
	first        uint64         // the hash of the new one's first message
	held         []Event        // the new one's messages while it catches up
	lastOld      time.Time      // when the old one last delivered
	deadline     time.Time      // the catch-up ends then
	hardDeadline time.Time      // however long the old one goes on delivering
	stats        *stats
	abandoned    bool // the new one died before the switch: the old one goes on
	finished     bool // switched, and no duplicate can come any more
	switchOne    sync.Once
}

var rotSeed = maphash.MakeSeed()

func hashOf(ev *Event) uint64 {
	var h maphash.Hash
	h.SetSeed(rotSeed)
	h.WriteByte(byte(ev.Kind))
	h.Write(ev.Data)
	return h.Sum64()
}

// queueRotating queues what the rotation lets through of evs, read by cn.
// The decision and the queueing happen under the rotation's lock, so that
// what one connection was let deliver is in the queue before the other
// connection's next decision -- also while the queue is full and the
// reader waits for room (then the other reader waits too). Only reader
// goroutines get here: a consumer, which must never wait for room it
// alone can make, does not read on the fast path during a rotation.
func (c *Client) queueRotating(r *rotation, cn *conn, evs []Event) error {
	r.mu.Lock()
	err := c.queueRouted(cn, r.route(cn, evs))
	over := (r.finished || r.abandoned) && r.old.isDead()
	r.mu.Unlock()
	if over {
		c.rot.CompareAndSwap(r, nil)
	}
	return err
}

// route decides what of evs, read by cn, is delivered now (see the top of
// the file). It may return held messages too. Under r.mu.
func (r *rotation) route(cn *conn, evs []Event) []Event {
	switch {
	case r.abandoned:
		return evs
	case cn == r.old && r.phase == rotSwitched:
		return nil // the old connection is closing: the new one delivers
	case cn == r.old:
		r.lastOld = time.Now()
		caughtUp := false
		for i := range evs {
			h := hashOf(&evs[i])
			r.remember(h)
			caughtUp = caughtUp || (r.phase == rotCatchUp && h == r.first)
		}
		if caughtUp {
			return append(evs, r.switchLocked(nil)...)
		}
		if r.phase == rotCatchUp { // the old one still delivers: give it time to catch up, within reason
			r.deadline = minTime(r.hardDeadline, maxTime(r.deadline, time.Now().Add(catchUpFor/2)))
		}
		return evs
	case cn != r.nu:
		return evs
	case r.phase == rotSwitched:
		return r.dedupe(evs)
	case r.phase == rotOverlap:
		now := time.Now()
		r.first, r.phase, r.deadline, r.hardDeadline = hashOf(&evs[0]), rotCatchUp, now.Add(catchUpFor), now.Add(10*catchUpFor)
		if r.seen[r.first] > 0 { // the old one delivered it already
			return r.switchLocked(evs)
		}
	}
	if len(r.held)+len(evs) > maxHeld || time.Now().After(r.deadline) {
		return r.switchLocked(evs)
	}
	for _, ev := range evs { // the reader reuses its buffers: keep copies
		ev.Data = bytes.Clone(ev.Data)
		r.held = append(r.held, ev)
	}
	return nil
}

func (r *rotation) remember(h uint64) {
	r.seen[h]++
	r.order = append(r.order, h)
	if len(r.order) > maxSeen {
		old := r.order[0]
		r.order = r.order[1:]
		if r.seen[old]--; r.seen[old] <= 0 {
			delete(r.seen, old)
		}
	}
}

// switchLocked switches delivery to the new connection: the held messages
// and then evs, without what the old one delivered.
func (r *rotation) switchLocked(evs []Event) []Event {
	if r.phase == rotSwitched {
		return r.dedupe(evs)
	}
	r.phase = rotSwitched
	out := r.dedupe(append(r.held, evs...))
	r.held = nil
	close(r.over)
	return out
}

// dedupe drops the messages the old connection delivered in the overlap,
// until the first one it did not: from there the new connection is ahead,
// and a message equal to an old one is a new message.
func (r *rotation) dedupe(evs []Event) []Event {
	if len(r.seen) == 0 {
		r.finished = r.phase == rotSwitched
		return evs
	}
	out := evs[:0:0]
	for i := range evs {
		h := hashOf(&evs[i])
		if len(r.seen) > 0 && r.seen[h] > 0 {
			r.seen[h]--
			r.stats.add(StatDuplicatesDropped, 1)
			continue
		}
		if len(r.seen) > 0 {
			clear(r.seen)
			r.order = nil
		}
		r.finished = r.phase == rotSwitched
		out = append(out, evs[i])
	}
	return out
}

// switchDue reports a switch that no message will bring: the catch-up
// is over, or both connections have been quiet for catchUpFor since the new
// one opened (a quiet feed: nothing to lose).
func (r *rotation) switchDue(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.phase {
	case rotCatchUp:
		return now.After(r.deadline)
	case rotOverlap:
		return now.Sub(maxTime(r.lastOld, r.nu.openedAt)) >= catchUpFor
	}
	return false
}

// forceSwitch switches now (the catch-up is over, or the old connection
// ended): the held messages go out before anything newer.
func (c *Client) forceSwitch(r *rotation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase != rotSwitched {
		_ = c.queueRouted(r.nu, r.switchLocked(nil))
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Rotate replaces the open connection make-before-break (see above):
// CodeNotConnected unless one is open; nil if a rotation started or is
// under way.
func (c *Client) Rotate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.userClosed || c.end != nil || c.state != StateOpen {
		return &Error{Code: CodeNotConnected, Op: "rotate", Err: errors.New("no open connection to rotate")}
	}
	if c.rotating {
		return nil
	}
	c.rotating = true
	old := c.conn
	c.group.Go("rotate", func() { c.rotate(old) })
	return nil
}

// rotate runs one rotation of connection old: the dial, the overlap, the
// switch, the close of old. Failures leave old serving and try again.
func (c *Client) rotate(old *conn) {
	defer func() {
		c.mu.Lock()
		c.rotating = false
		c.mu.Unlock()
	}()
	for failed := 0; !old.isDead(); failed++ {
		r := c.beginRotation(old)
		nu, err := c.dialRotation()
		if err == nil {
			c.overlap(r, nu)
			return
		}
		c.rot.CompareAndSwap(r, nil)
		c.stats.add(StatRotationFailures, 1)
		select {
		case <-old.dead:
		case <-time.After(c.rotationRetry(failed)):
		}
	}
}

// beginRotation registers a rotation of old before its dial: the venue
// may send to the new connection as soon as its handshake is done, so what
// old delivers from now on is remembered, to know the new one's first
// message when old delivers it too. A waiting consumer hands old's socket
// back to the reader goroutine: see queueRotating.
func (c *Client) beginRotation(old *conn) *rotation {
	r := &rotation{old: old, done: make(chan error, 1), over: make(chan struct{}), seen: map[uint64]int{}, stats: &c.stats}
	c.rot.Store(r)
	if old.turn != nil {
		old.turn.handBack()
	}
	return r
}

// rotationRetry is the wait before a rotation's next attempt after failed
// ones: the reconnect policy's schedule (the default one without a policy).
func (c *Client) rotationRetry(failed int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.Reconnect == nil {
		return DefaultBackoff.delay(failed)
	}
	return c.policy.delay(failed)
}

// dialRotation dials the new connection: fresh headers, connect_rate.
func (c *Client) dialRotation() (*conn, error) {
	if r := c.s.ConnectRate; r != nil {
		if d := time.Until(r.reserve()); d > 0 && !c.sleep(d) {
			return nil, &Error{Code: CodeClosed, Op: "rotate", Err: errors.New("closed")}
		}
	}
	return c.dialOnce("rotate")
}

// overlap runs the new connection beside old until the switch, then
// closes old; the supervisor's session adopts the new one (adopt).
func (c *Client) overlap(r *rotation, nu *conn) {
	old := r.old
	c.mu.Lock()
	if old.isDead() || c.conn != old || c.userClosed {
		c.mu.Unlock()
		c.rot.CompareAndSwap(r, nil)
		nu.die(errRotated)
		_ = nu.net.Close()
		return
	}
	c.connNo++
	r.mu.Lock()
	r.nu, r.num, r.phase = nu, c.connNo, rotOverlap
	nu.openedAt = time.Now()
	r.mu.Unlock()
	c.mu.Unlock()
	c.stats.add(StatConnects, 1)
	c.emit(Event{Kind: EventOpen, Data: []byte(nu.subprotocol), Runes: r.num})
	c.startWatchers(nu)
	c.group.Go("read", func() { r.done <- safely("read", func() error { return c.readLoop(nu) }) })
	t := time.NewTimer(catchUpFor)
	defer t.Stop()
	for {
		select {
		case <-r.over:
			c.switchTo(r)
			return
		case <-nu.dead:
			c.abandon(r)
			return
		case <-old.dead:
			return // the supervisor adopts the new one at once (adopt)
		case <-t.C:
			if r.switchDue(time.Now()) {
				c.forceSwitch(r)
			}
			t.Reset(catchUpFor / 4)
		}
	}
}

// switchTo makes the new connection the client's and closes the old one
// (once: the overlap goroutine or the supervisor's adopt does it).
func (c *Client) switchTo(r *rotation) {
	r.switchOne.Do(func() { c.switched(r) })
}

func (c *Client) switched(r *rotation) {
	c.mu.Lock()
	if c.userClosed || r.nu.isDead() {
		c.mu.Unlock()
		return
	}
	c.conn, c.subprotocol = r.nu, r.nu.subprotocol
	c.ready = !c.s.OpenGate || r.ready
	c.mu.Unlock()
	c.openedAt.Store(r.nu.openedAt.UnixNano())
	c.stats.add(StatRotations, 1)
	c.emit(Event{Kind: EventRotated, Runes: r.num})
	old := r.old
	if old.turn != nil {
		old.turn.recall()
	}
	c.group.Go("close", func() { c.closeConnWith(old, 1000, "rotated") }) // not under switchOne: the supervisor's adopt waits on it
}

// abandon ends a rotation whose new connection died before the switch:
// the old one goes on; the held messages are dropped with it.
func (c *Client) abandon(r *rotation) {
	r.mu.Lock()
	switched := r.phase == rotSwitched
	if !switched {
		r.phase, r.held = rotSwitched, nil
		r.abandoned = true
	}
	r.mu.Unlock()
	if switched {
		c.switchTo(r)
		return
	}
	c.rot.CompareAndSwap(r, nil)
	c.stats.add(StatRotationFailures, 1)
}

// adopt is the supervisor's session after its connection cn's reader
// returned: if a rotation replaces cn, the new connection (whose reader
// runs already) becomes the session's, and cn ends quietly -- no
// Disconnected, no reconnect. If cn died before the switch, the switch
// happens now.
func (c *Client) adopt(cn *conn) (*rotation, bool) {
	r := c.rot.Load()
	if r == nil || r.old != cn {
		return nil, false
	}
	nu, abandoned := r.newConn()
	if nu == nil { // it died while the new one was dialled
		c.rot.CompareAndSwap(r, nil)
		return nil, false
	}
	if abandoned {
		return nil, false
	}
	if c.closeRequested() || nu.isDead() {
		nu.die(errRotated)
		c.rot.CompareAndSwap(r, nil)
		return nil, false
	}
	c.forceSwitch(r)
	c.switchTo(r)
	return r, true
}

// newConn is the rotation's new connection (nil while it is dialled), and
// whether the rotation was abandoned.
func (r *rotation) newConn() (*conn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nu, r.abandoned
}

// retire ends connection cn, which a rotation replaced, quietly: its close
// handshake (started by the switch) completes; senders that still hold it
// learn to try again.
func (c *Client) retire(cn *conn, err error) {
	cn.fate = fate{again: true, cause: errRotated}
	close(cn.settled)
	c.finishConn(cn, cn.endCause(err))
}

// Ready of a rotation's new connection.
func (c *Client) readyRotation(n int) bool {
	if r := c.rot.Load(); r != nil && r.nu != nil && r.num == n {
		r.ready = true
		if c.conn == r.nu {
			c.ready = true
		}
		return true
	}
	return false
}

// rotationConn is the new connection for senders of its on_open.
func (c *Client) rotationConn(opening int) *conn {
	if r := c.rot.Load(); r != nil && r.nu != nil && opening != 0 && r.num == opening && !r.nu.isDead() {
		return r.nu
	}
	return nil
}
