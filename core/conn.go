package core

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// writeChunk bounds the masked copy of a payload: large messages are masked
// and written in pieces so the write buffer never grows past it.
const writeChunk = 64 << 10

var errCloseSent = errors.New("close frame already sent")

// conn is one WebSocket connection instance. It dies as a whole: the first
// failure of either half closes the socket, which stops the other half, and
// is the only error ever reported for it.
type conn struct {
	client *Client
	net    net.Conn
	raw    net.Conn       // the socket under TLS; net itself for ws://
	spill  spiller        // the socket's non-blocking writes, nil if it has none
	src    *bufio.Reader  // buffered frames, starting with any that came with the 101
	rd     *wsutil.Reader // frames from src, for whoever holds the turn
	turn   *turn          // who reads: the reader goroutine or a waiting consumer; nil: always the goroutine

	subprotocol string
	openedAt    time.Time
	peerClose   *CloseError  // the peer's close frame, once received; the reader's
	firstClose  atomic.Int32 // the Side that sent the first close frame

	arena   arena     // message buffers; the reader's alone
	burst   []Event   // readBurst's batch, kept for the next burst
	inflate *inflater // permessage-deflate state, nil unless negotiated

	// Liveness, for the heartbeat.
	frames        atomic.Uint64 // frames read so far
	readerBlocked atomic.Bool   // the reader waits for room in the queue
	unblockedAt   atomic.Int64  // unix ns when it last stopped waiting

	// Write state. writeMu is a lock that a waiter can give up on when the
	// connection dies, so a stuck socket never blocks Close, and that one
	// goroutine can hand to another (see writeNoWait).
	writeMu   chan struct{}
	wbuf      bytes.Buffer
	closeSent bool // RFC 6455 5.5.1: no data frame after our close frame

	// Death.
	dead     chan struct{}
	deadOnce sync.Once
	cause    error // the first failure; written before dead is closed

	// Fate: decided by the supervisor once the reader returned (settle).
	settled chan struct{}
	fate    fate // written before settled is closed
}

func newConn(c *Client, d *dialed) *conn {
	cn := &conn{
		client: c, net: d.conn, raw: d.raw, src: d.reader, subprotocol: d.subprotocol, inflate: d.inflate,
		writeMu: make(chan struct{}, 1), dead: make(chan struct{}), settled: make(chan struct{}),
	}
	cn.spill = spillerOf(d.raw)
	// The fast path (turn.go) is for a client that its own consumer polls;
	// a hub's members are read by their reader goroutines alone, which is
	// cheaper when nobody waits on one connection in particular.
	if sock := fastSocketOf(d.raw); sock != nil && c.consumer.Load() == nil {
		cn.turn = newTurn(sock, watchFor(c.s.PingTimeout))
	}
	cn.rd = cn.newFrameReader()
	return cn
}

// die ends the connection with err as its cause; later calls are no-ops, so
// the errors that follow from our own close are never reported. After a
// close handshake TLS says goodbye (close_notify); on any other end the
// socket goes first, so that TLS's goodbye cannot wait behind a full
// socket (it would, for 5 s) or a drain in progress.
func (cn *conn) die(err error) {
	cn.deadOnce.Do(func() {
		cn.cause = err
		close(cn.dead)
		if _, graceful := AsCloseError(err); !graceful && cn.raw != nil {
			_ = cn.raw.Close()
		}
		_ = cn.net.Close() // its error is the consequence, not the cause
	})
}

// endCause is why the connection ended, given the error its reader
// returned: a received close frame wins over whatever happened after it
// (the TCP close that follows, a close timeout), and a failure that killed
// the connection wins over the reader's view of it (a closed socket).
func (cn *conn) endCause(readErr error) error {
	switch {
	case cn.peerClose != nil:
		return cn.peerClose
	case cn.isDead():
		return cn.cause
	}
	return readErr
}

// closedBy is who sent the first close frame, SideNone if nobody did.
func (cn *conn) closedBy() Side { return Side(cn.firstClose.Load()) }

// upFor is how long the connection has been open.
func (cn *conn) upFor() time.Duration { return time.Since(cn.openedAt) }

func (cn *conn) isDead() bool {
	select {
	case <-cn.dead:
		return true
	default:
		return false
	}
}

// deathError is what a write on a dead connection returns.
func (cn *conn) deathError() *Error {
	<-cn.dead
	return &Error{Code: CodeClosed, Op: "write", Err: cn.cause}
}

func (cn *conn) lockWrite(timeout time.Duration) error {
	select {
	case cn.writeMu <- struct{}{}:
		return nil
	default:
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case cn.writeMu <- struct{}{}:
		return nil
	case <-cn.dead:
		return cn.deathError()
	case <-expired:
		return &Error{Code: CodeTimeout, Op: "write", Err: errors.New("timed out waiting for the write lock")}
	}
}

// tryLockWrite takes the write lock if it is free.
func (cn *conn) tryLockWrite() bool {
	select {
	case cn.writeMu <- struct{}{}:
		return true
	default:
		return false
	}
}

func (cn *conn) unlockWrite() { <-cn.writeMu }

// writeFrame writes one whole frame under the write lock: data, ping, pong
// and close frames never interleave.
func (cn *conn) writeFrame(op ws.OpCode, p []byte) error {
	return cn.writeFrames([]ws.OpCode{op}, [][]byte{p})
}

// writeFrames writes frames back to back under one lock, coalesced into as
// few writes as the buffer allows, within WriteTimeout.
func (cn *conn) writeFrames(ops []ws.OpCode, payloads [][]byte) error {
	return cn.writeFramesWithin(ops, payloads, cn.client.s.WriteTimeout)
}

// writeFramesWithin is writeFrames with its own timeout (0: none) for the
// wait for the lock and for the write.
func (cn *conn) writeFramesWithin(ops []ws.OpCode, payloads [][]byte, timeout time.Duration) error {
	if err := cn.lockWrite(timeout); err != nil {
		return err
	}
	defer cn.unlockWrite()
	if err := cn.writable(); err != nil {
		return err
	}
	if timeout > 0 {
		_ = cn.net.SetWriteDeadline(time.Now().Add(timeout))
	}
	return cn.finishWrite(ops, cn.appendFrames(ops, payloads))
}

// writable checks, under the write lock, that frames may still be written.
func (cn *conn) writable() error {
	if cn.isDead() {
		return cn.deathError()
	}
	if cn.closeSent {
		return &Error{Code: CodeClosed, Op: "write", Err: errCloseSent}
	}
	return nil
}

// finishWrite flushes what appendFrames left and records the outcome; a
// failed write kills the connection (a half-written frame cannot be taken
// back).
func (cn *conn) finishWrite(ops []ws.OpCode, err error) error {
	if err == nil {
		err = cn.flush()
	}
	if err != nil {
		cn.wbuf.Reset()
		e := wrap("write", err)
		cn.die(e)
		return e
	}
	if ops[len(ops)-1] == ws.OpClose {
		cn.closeSent = true
		cn.firstClose.CompareAndSwap(int32(SideNone), int32(SideClient))
	}
	return nil
}

// writeNoWait writes frames without ever blocking the caller: it fails with
// CodeWouldBlock if another write holds the lock; otherwise the frames are
// written as far as the socket takes them at once, and a goroutine writes
// the rest under the write lock (bounded by WriteTimeout). It is for event
// loops: a stalled server must never stall the loop.
func (cn *conn) writeNoWait(ops []ws.OpCode, payloads [][]byte) error {
	if cn.spill == nil { // no non-blocking socket underneath (not Linux)
		return cn.writeFrames(ops, payloads)
	}
	if !cn.tryLockWrite() {
		if cn.isDead() {
			return cn.deathError()
		}
		return &Error{Code: CodeWouldBlock, Op: "write", Err: errors.New("another write is in progress")}
	}
	if err := cn.writable(); err != nil {
		cn.unlockWrite()
		return err
	}
	cn.spill.spilling(true)
	err := cn.finishWrite(ops, cn.appendFrames(ops, payloads))
	cn.spill.spilling(false)
	if err != nil || !cn.spill.spilled() {
		cn.unlockWrite()
		return err
	}
	// The lock goes to the goroutine that drains the spill.
	if !cn.client.group.Go("drain", cn.drainSpill) {
		cn.unlockWrite()
		cn.die(&Error{Code: CodeClosed, Op: "write", Err: errClientEnded})
	}
	return nil
}

// drainSpill writes what a writeNoWait left behind, then releases the
// write lock it was handed.
func (cn *conn) drainSpill() {
	defer cn.unlockWrite()
	if timeout := cn.client.s.WriteTimeout; timeout > 0 {
		_ = cn.net.SetWriteDeadline(time.Now().Add(timeout))
	}
	if err := cn.spill.drain(); err != nil {
		cn.die(wrap("write", err))
	}
}

func (cn *conn) appendFrames(ops []ws.OpCode, payloads [][]byte) error {
	for i, op := range ops {
		if err := cn.appendMasked(op, payloads[i]); err != nil {
			return err
		}
	}
	return nil
}

// appendMasked frames and masks p (RFC 6455 5.3: every client frame is
// masked) into the write buffer, flushing it whenever it holds writeChunk
// bytes. p itself is never touched: it may be memory the caller still owns.
func (cn *conn) appendMasked(op ws.OpCode, p []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}
	if err := ws.WriteHeader(&cn.wbuf, h); err != nil {
		return err
	}
	for off := 0; off < len(p); {
		n := min(len(p)-off, max(writeChunk-cn.wbuf.Len(), 0))
		if n == 0 {
			if err := cn.flush(); err != nil {
				return err
			}
			continue
		}
		start := cn.wbuf.Len()
		cn.wbuf.Write(p[off : off+n])
		ws.Cipher(cn.wbuf.Bytes()[start:], h.Mask, off)
		off += n
	}
	return nil
}

// flush writes the buffer to the socket.
func (cn *conn) flush() error {
	if cn.wbuf.Len() == 0 {
		return nil
	}
	_, err := cn.net.Write(cn.wbuf.Bytes())
	cn.wbuf.Reset()
	return err
}

// writeClose sends a close frame (RFC 6455 5.5.1). 1005 means "no code":
// the frame then has no body.
func (cn *conn) writeClose(code int, reason string) error {
	return cn.writeCloseWithin(code, reason, cn.client.s.WriteTimeout)
}

func (cn *conn) writeCloseWithin(code int, reason string, timeout time.Duration) error {
	var body []byte
	if code != CloseNoStatus {
		body = ws.NewCloseFrameBody(ws.StatusCode(code), reason)
	}
	return cn.writeFramesWithin([]ws.OpCode{ws.OpClose}, [][]byte{body}, timeout)
}

// serverCloseGrace bounds the wait for the server's TCP close once both
// close frames are exchanged. RFC 6455 7.1.1 has the server close first (so
// the client does not hold TIME_WAIT) but lets the client close "at any
// time after sending and receiving a Close message": many servers wait for
// the client instead, and waiting the full close_timeout for them would hold
// up the end, and the reconnect, for nothing.
const serverCloseGrace = 250 * time.Millisecond

// awaitServerClose gives the server until the earlier of deadline and the
// grace period to close TCP after the close frames were exchanged.
func (cn *conn) awaitServerClose(deadline time.Time) {
	if grace := time.Now().Add(serverCloseGrace); deadline.IsZero() || grace.Before(deadline) {
		deadline = grace
	}
	_ = cn.net.SetReadDeadline(deadline)
	_, _ = io.Copy(io.Discard, io.LimitReader(cn.src, 1<<20))
}

// afterDeath is what a sender learns once it found cn dead: NotConnected if
// the client dials again, the client's end if it does not.
func (cn *conn) afterDeath(op string) error {
	t := time.NewTimer(settleWait)
	defer t.Stop()
	select {
	case <-cn.settled:
	case <-t.C:
		return &Error{Code: CodeNotConnected, Op: op, Err: errors.New("the connection was lost")}
	}
	if cn.fate.again {
		return &Error{Code: CodeNotConnected, Op: op, Err: errors.New("the connection was lost; reconnecting")}
	}
	end, _ := cn.client.End()
	return end.closedError(op)
}

// settleWait bounds the wait for a dead connection's fate. The reader
// returns within moments of the socket's close, so this is only a safety
// net against a bug.
const settleWait = 5 * time.Second
