package core

import (
	"errors"
	"os"
	"sync"
	"time"
)

// The fast path for a waiting consumer. When a consumer polls an empty queue,
// the wait should end the way an event loop's does: the kernel wakes the
// waiting thread because the socket became readable, and that thread reads
// and parses the frames itself, inside its own call into the library --
// no hop through the reader goroutine and the scheduler. The reader
// goroutine covers every other moment: heartbeats, server pings and a
// consumer that is busy elsewhere.
//
// Who reads the socket is a turn. The reader goroutine holds it, except
// while it waits for the socket at a frame boundary with nothing buffered;
// then it is idle and a consumer may take it for the length of one call
// (Client.PollFast), reading only frames that are whole in the buffer. A
// consumer that found nothing leaves the turn leased to itself: it is about
// to wait on the socket. The reader goroutine then stops waiting on the
// socket too -- two waiters would both wake for every message, and on a
// busy host the second wake-up costs the first its core -- and only
// watches, every so often (watchFor), that bytes do not sit in the socket
// while the consumer stays away: then it takes the turn back, so that a
// consumer busy elsewhere cannot starve the heartbeat nor a server's ping.
// A frame the consumer should not finish -- a fragment, a compressed frame,
// one larger than the buffer, one that arrived in part, a message the queue
// has no room for, a failure -- stays for the reader goroutine, which the
// consumer hands the turn at once.

// The states of a turn.
const (
	turnReader   = iota // the reader goroutine reads, or decides to
	turnIdle            // the reader goroutine waits for the socket: the turn is free
	turnConsumer        // a consumer reads, inside its call
	turnLeased          // a consumer waits on the socket
)

// maxWatch bounds the time between the reader goroutine's looks at a
// leased socket (see watchFor).
const maxWatch = 250 * time.Millisecond

type turn struct {
	mu     sync.Mutex
	state  int
	calls  uint64        // takes and gives by consumers: a sign the consumer is there
	parked bool          // the reader goroutine watches a leased socket
	back   chan struct{} // hands the turn to the parked reader goroutine
	stash  error         // what the consumer met that ends the connection, for the reader to return
	kicked bool          // the idle reader goroutine's wait was interrupted (see give)
	over   bool          // the connection has ended: no consumer takes the turn again
	closed bool          // a close is under way (recall): the reader goroutine reads to the end
	watch  time.Duration
	sock   fastSocket
}

func newTurn(sock fastSocket, watch time.Duration) *turn {
	return &turn{back: make(chan struct{}, 1), sock: sock, watch: watch}
}

// watchFor is how often the reader goroutine looks at a leased socket of
// a connection whose heartbeat gives the peer pingTimeout (0: none): four
// looks within it at least, so that bytes that wait for a consumer that
// went away -- a pong among them -- are read long before the verdict.
func watchFor(pingTimeout time.Duration) time.Duration {
	if pingTimeout > 0 {
		return min(maxWatch, pingTimeout/4)
	}
	return maxWatch
}

// fastSocket is a socket the fast path can use (Linux; see nosigpipe_linux.go).
type fastSocket interface {
	setReadMode(mode int32) error // readWaiting, readProbe (no wait) or readConsumer (no wait, own descriptor)
	closeConsumerFD()             // once no consumer reads any more
	waitReadable() error          // wait until the socket has bytes, reading none
	readable() bool               // whether it has, without waiting
	kick()                        // end a waitReadable early
	unkick()                      // undo kick
	dup() (int, error)            // a descriptor of the socket for a consumer to wait on
	consumerFD() (int, error)     // the consumer's own descriptor (made on first use), while it holds the turn
}

// The read modes of a socket of a fastSocket (see setReadMode).
const (
	readWaiting  = iota // Read waits for bytes, as usual
	readProbe           // Read does not wait (the reader goroutine's probe)
	readConsumer        // Read does not wait, through a descriptor of the consumer's (see dupForReads)
)

// wouldBlock reports a read that found nothing (see errWouldBlock).
func wouldBlock(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// holding reports whether the reader goroutine has the turn.
func (t *turn) holding() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == turnReader
}

// idle: the reader goroutine, holding the turn, is about to wait for the socket.
func (t *turn) idle() {
	t.mu.Lock()
	t.state = turnIdle
	t.mu.Unlock()
}

// reclaim is the reader goroutine taking its turn back after its wait for
// the socket; false (and it is parked: see awaitBack) if a consumer has it.
func (t *turn) reclaim() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kicked { // under the lock, so that no stale deadline outlives the wait
		t.kicked = false
		t.sock.unkick()
	}
	if t.state == turnIdle {
		t.state = turnReader
		return true
	}
	t.parked = true
	return false
}

// awaitBack parks the reader goroutine while a consumer has the turn,
// until the consumer hands it back or, at a look (see lapse), the goroutine
// takes it (true); false once stop is closed.
func (t *turn) awaitBack(stop <-chan struct{}) bool {
	ticker := time.NewTicker(t.watch)
	defer ticker.Stop()
	seen := t.seen()
	for {
		select {
		case <-t.back:
			return true
		case <-stop:
			return false
		case <-ticker.C:
			var took bool
			if took, seen = t.lapse(seen); took {
				return true
			}
		}
	}
}

func (t *turn) seen() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
}

// lapse is a look at a leased socket: the reader goroutine takes the turn
// if bytes wait there and no consumer called since the last look (seen).
func (t *turn) lapse(seen uint64) (took bool, calls uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case !t.parked || t.state != turnLeased || t.calls != seen || !t.sock.readable():
		return false, t.calls // handed back (the token waits), a call is on, the consumer is there, or nothing waits
	}
	t.state, t.parked = turnReader, false
	return true, t.calls
}

// take is a consumer's attempt to read: it succeeds while the reader
// goroutine waits for the socket, or under the consumer's lease.
func (t *turn) take() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over || t.closed || (t.state != turnIdle && t.state != turnLeased) {
		return false
	}
	t.state = turnConsumer
	t.calls++
	return true
}

// leased reports whether a consumer holds the turn for its wait.
func (t *turn) leased() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == turnLeased && !t.over
}

// recall hands a leased turn back to the reader goroutine at once, and
// for good: a close handshake must not wait for a look at the socket, nor
// for a consumer that stopped calling once the queue refused more (a call
// in progress hands the turn back when it ends: give).
func (t *turn) recall() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.handBackLocked()
}

// handBack gives a leased turn back to the reader goroutine now, as recall
// does, but not for good: the consumer may lease it again later.
func (t *turn) handBack() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.handBackLocked()
}

func (t *turn) handBackLocked() {
	switch {
	case t.state != turnLeased:
	case t.parked:
		t.parked, t.state = false, turnReader
		t.back <- struct{}{}
	default:
		t.state = turnIdle
	}
}

// give ends a consumer's call. With work for the reader goroutine (look:
// bytes in the buffer it did not finish, or err, a failure that ends the
// connection), the goroutine gets the turn at once -- woken if it waits for
// the socket. Otherwise the consumer keeps the turn leased for its wait.
func (t *turn) give(look bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	if err != nil && t.stash == nil {
		t.stash = err
	}
	switch {
	case t.over: // the call outlived the connection: its descriptor goes now
		t.state = turnReader
		t.sock.closeConsumerFD()
	case !look && err == nil && !t.closed:
		t.state = turnLeased
	case t.parked:
		t.parked, t.state = false, turnReader
		t.back <- struct{}{}
	default:
		t.state = turnIdle
		if !t.kicked {
			t.kicked = true
			t.sock.kick()
		}
	}
}

// end closes the turn for good once the reader goroutine is done: the
// consumer's descriptor goes, now or when a consumer's call in progress
// ends (give), never under a read.
func (t *turn) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.over = true
	if t.state != turnConsumer {
		t.sock.closeConsumerFD()
	}
}

// stashed is what a consumer met that ends the connection, if anything.
func (t *turn) stashed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stash
}
