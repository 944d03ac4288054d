package core

import (
	"encoding/binary"
	"io"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

var errInvalidUTF8 = wsutil.ErrInvalidUTF8

// firstChunk is the most the reader allocates before bytes arrive: a peer
// that declares a large frame gets memory as it sends, not as it claims.
const firstChunk = 64 << 10

// newFrameReader is the connection's frame reader: gobwas/ws's, which
// whoever holds the reading turn (turn.go) drives.
func (cn *conn) newFrameReader() *wsutil.Reader {
	rd := &wsutil.Reader{
		Source:         cn.src,
		State:          ws.StateClientSide,
		MaxMessageSize: cn.client.s.MaxMessageSize,
	}
	// RFC 6455 5.4: control frames may come between the fragments of a
	// message. Every frame counts as a sign of life for the heartbeat.
	rd.OnIntermediate = func(hdr ws.Header, r io.Reader) error {
		cn.frames.Add(1)
		return cn.handleControl(hdr, r)
	}
	rd.OnContinuation = func(ws.Header, io.Reader) error {
		cn.frames.Add(1)
		return nil
	}
	if cn.inflate != nil {
		// RFC 7692 6: RSV1 marks a compressed message. StateExtended lets
		// RSV bits past the header check; wsflate then clears RSV1 and
		// refuses it where it may not be (control frames, continuations).
		rd.State |= ws.StateExtended
		rd.Extensions = []wsutil.RecvExtension{&cn.inflate.state}
	}
	return rd
}

// readLoop is the reader goroutine's body: frame after frame, until the
// connection ends -- a *CloseError for a close frame from the peer, any
// other error for a failure. Between frames it may lend the socket to a
// waiting consumer (awaitFrame).
func (c *Client) readLoop(cn *conn) error {
	for {
		if err := cn.awaitFrame(); err != nil {
			return err
		}
		if err := cn.readFrame(false); err != nil {
			return err
		}
	}
}

// readFrame reads one frame -- a control frame, or a whole message and
// its fragments -- and acts on it; or, when small messages wait in the
// buffer, a burst of them (readBurst). consumer: a consumer reads, which
// must not wait for room in the queue.
func (cn *conn) readFrame(consumer bool) error {
	if n, err := cn.readBurst(consumer); n > 0 || err != nil {
		return err
	}
	hdr, err := cn.rd.NextFrame()
	if err != nil {
		return err
	}
	cn.frames.Add(1)
	if hdr.OpCode.IsControl() {
		return cn.handleControl(hdr, cn.rd)
	}
	ev, err := cn.readMessage(cn.rd, hdr)
	if err != nil {
		return err
	}
	return cn.client.deliver(cn, ev)
}

// awaitFrame is the reader goroutine at a frame boundary: it returns once
// there is something to read. While the socket has nothing, a consumer may
// take the turn (turn.go); the goroutine then waits for it to be handed
// back, watching for a consumer that went away, and returns what the
// consumer met that ends the connection.
func (cn *conn) awaitFrame() error {
	t := cn.turn
	if t == nil {
		return nil
	}
	for {
		if err := t.stashed(); err != nil {
			return err
		}
		if t.holding() {
			if cn.src.Buffered() > 0 {
				return nil
			}
			if cn.net != cn.raw { // TLS may hold decrypted bytes the socket no longer shows
				if ready, err := cn.probe(); ready || err != nil {
					return err
				}
			}
			t.idle()
		}
		err := t.sock.waitReadable()
		ok := t.reclaim()
		switch {
		case !ok && !t.awaitBack(cn.dead):
			return cn.deathError()
		case ok && err != nil && !wouldBlock(err):
			return err
		}
	}
}

// probe reads what the socket has without waiting (through TLS, whose
// records may hold more than the socket shows); false if nothing.
func (cn *conn) probe() (bool, error) {
	_ = cn.turn.sock.setReadMode(readProbe)
	_, err := cn.src.Peek(1)
	_ = cn.turn.sock.setReadMode(readWaiting)
	switch {
	case err == nil:
		return true, nil
	case wouldBlock(err):
		return false, nil
	}
	return false, err
}

// readWhole is the fast path, on a consumer's thread holding the turn: it
// reads the frames that are whole in the buffer, or that arrive whole
// without waiting, into the queue. It reports whether it left the reader
// goroutine work (look), and the failure that ends the connection.
func (cn *conn) readWhole() (look bool, err error) {
	if err := cn.turn.sock.setReadMode(readConsumer); err != nil {
		return false, nil // no descriptor: the reader goroutine reads as ever
	}
	defer func() { _ = cn.turn.sock.setReadMode(readWaiting) }()
	for {
		hdr, whole, err := cn.peekFrame()
		switch {
		case wouldBlock(err):
			return cn.src.Buffered() > 0, nil // nothing, or part of a frame
		case err != nil:
			return true, err
		case !whole, !hdr.OpCode.IsControl() && !cn.client.q.hasRoom(int(hdr.Length)):
			return true, nil
		}
		if err := cn.readFrame(true); err != nil {
			return true, err
		}
	}
}

// peekFrame looks at the next frame in the buffer without taking it: whole
// reports a frame the fast path may read -- final, not extended, not
// masked, of a known opcode, and all of it in the buffer. Anything else
// (fragments, compression, a frame the reader goroutine will refuse, one
// larger than the buffer) is for the reader goroutine.
func (cn *conn) peekFrame() (hdr ws.Header, whole bool, err error) {
	b, err := cn.src.Peek(2)
	if err != nil {
		return hdr, false, err
	}
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b[1]&0x80 != 0 {
		return hdr, false, nil // RFC 6455 5.1: a masked server frame; the reader refuses it
	}
	if b, err = cn.src.Peek(n); err != nil {
		return hdr, false, err
	}
	hdr = ws.Header{Fin: b[0]&0x80 != 0, Rsv: (b[0] >> 4) & 0x7, OpCode: ws.OpCode(b[0] & 0x0f), Length: int64(b[1] & 0x7f)}
	switch n {
	case 4:
		hdr.Length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 10:
		hdr.Length = int64(binary.BigEndian.Uint64(b[2:10]) & (1<<63 - 1))
	}
	switch {
	case !hdr.Fin, hdr.Rsv != 0, hdr.Length > int64(cn.src.Size()-n):
		return hdr, false, nil
	case hdr.OpCode != ws.OpText && hdr.OpCode != ws.OpBinary && hdr.OpCode != ws.OpPing &&
		hdr.OpCode != ws.OpPong && hdr.OpCode != ws.OpClose:
		return hdr, false, nil
	}
	_, err = cn.src.Peek(n + int(hdr.Length))
	return hdr, err == nil, err
}

// burstMax is the most messages a burst queues at once.
const burstMax = 256

// readBurst is the flood's hot path: the small whole messages waiting in
// the buffer -- one unmasked final text or binary frame each, RSV clear,
// at most arenaMax bytes -- are parsed straight from the buffer into the
// arena and queued under one lock, without wsutil's per-frame machinery.
// It stops at anything else (control frames, fragments, compression,
// invalid UTF-8, a frame that has not fully arrived), which readFrame then
// reads the usual way. Only its first frame may wait for bytes: nothing
// it parsed waits behind a read. A consumer takes only what fits.
func (cn *conn) readBurst(consumer bool) (int, error) {
	limit, roomBytes := burstMax, int64(-1)
	if consumer {
		n, b := cn.client.q.room()
		limit, roomBytes = min(limit, n), b
	}
	buf := cn.burstBuffer()
	batch, off, size := cn.burst[:0], 0, int64(0)
	asBytes := cn.client.s.TextAsBytes
	for len(batch) < limit {
		payload, op, total := smallFrame(buf[off:], cn.client.s.MaxMessageSize)
		if total == 0 || (roomBytes >= 0 && size+int64(len(payload)) > roomBytes) {
			break
		}
		ev := Event{Kind: EventBinary}
		if op == ws.OpText {
			runes, ok := textRunes(payload)
			if !ok {
				break // readFrame fails it with 1007
			}
			if !asBytes {
				ev.Kind, ev.Runes = EventText, runes
			}
		}
		ev.Data = cn.arena.alloc(len(payload))
		copy(ev.Data, payload)
		batch = append(batch, ev)
		off += total
		size += int64(len(payload))
	}
	if len(batch) == 0 {
		return 0, nil
	}
	_, _ = cn.src.Discard(off)
	cn.frames.Add(uint64(len(batch)))
	c := cn.client
	now := time.Now().UnixNano() // the burst's frames were read together (before they count as read)
	c.stats.add(StatMessagesIn, int64(len(batch)))
	c.stats.add(StatBytesIn, size)
	for i := range batch {
		batch[i].Time = now
	}
	c.lastData.Store(now)
	err := c.queueAll(cn, batch)
	clear(batch) // the queue holds the messages now, not the batch
	cn.burst = batch[:0]
	return len(batch), err
}

// burstBuffer is what the buffer holds, after waiting (the reader
// goroutine may; a consumer's socket does not wait) for one small frame
// to be whole in it, if the next frame is one.
func (cn *conn) burstBuffer() []byte {
	if cn.src.Buffered() < 4 {
		_, _ = cn.src.Peek(2) // a read error is readFrame's to report
	}
	buf, _ := cn.src.Peek(cn.src.Buffered())
	if _, _, total := smallHeader(buf, cn.client.s.MaxMessageSize); total > len(buf) {
		buf, _ = cn.src.Peek(total)
	}
	return buf
}

// smallHeader reads the header of the frame that starts buf if it is one
// for readBurst: an unmasked final text or binary frame, RSV clear (RFC
// 6455 5.1, 5.2), of at most arenaMax and maxSize bytes. total is its
// length with the header (which may exceed buf), 0 if it is not one.
func smallHeader(buf []byte, maxSize int64) (head, length, total int) {
	if len(buf) < 2 {
		return 0, 0, 0
	}
	op := ws.OpCode(buf[0] & 0x0f)
	if buf[0]&0xf0 != 0x80 || buf[1]&0x80 != 0 || (op != ws.OpText && op != ws.OpBinary) {
		return 0, 0, 0
	}
	head, length = 2, int(buf[1])
	switch length {
	case 126:
		if len(buf) < 4 {
			return 0, 0, 0
		}
		head, length = 4, int(binary.BigEndian.Uint16(buf[2:4]))
	case 127:
		return 0, 0, 0 // a 64-bit length is never small
	}
	if length > arenaMax || int64(length) > maxSize {
		return 0, 0, 0
	}
	return head, length, head + length
}

// smallFrame is the whole small frame that starts buf: its payload (a
// slice of buf) and opcode, and its length; total 0 if there is none.
func smallFrame(buf []byte, maxSize int64) (payload []byte, op ws.OpCode, total int) {
	head, _, total := smallHeader(buf, maxSize)
	if total == 0 || total > len(buf) {
		return nil, 0, 0
	}
	return buf[head:total], ws.OpCode(buf[0] & 0x0f), total
}

// readMessage reads a whole, possibly fragmented, message; wsutil.Reader
// joins the fragments and enforces MaxMessageSize. Text is checked for
// UTF-8 (RFC 6455 8.1): a single frame, the common case, in one fast pass
// at its end; a fragmented message as it arrives, through wsutil's
// incremental checker, so an invalid sequence fails fast even when it is
// split across fragments.
func (cn *conn) readMessage(rd *wsutil.Reader, hdr ws.Header) (Event, error) {
	if cn.inflate.compressed(hdr) {
		return cn.readCompressed(rd, hdr)
	}
	var src io.Reader = rd
	var incremental *wsutil.UTF8Reader
	if hdr.OpCode == ws.OpText && !hdr.Fin {
		incremental = wsutil.NewUTF8Reader(rd)
		src = incremental
	}
	buf, err := cn.readPayload(rd, src, hdr)
	if err != nil {
		return Event{}, err
	}
	return makeMessage(hdr.OpCode, buf, incremental, cn.client.s.TextAsBytes)
}

// readCompressed inflates a compressed message (RFC 7692 7.2.2), checking
// size and UTF-8 on the inflated bytes, as they come.
func (cn *conn) readCompressed(rd *wsutil.Reader, hdr ws.Header) (Event, error) {
	cn.client.stats.add(StatCompressedIn, 1)
	limit := cn.client.s.MaxMessageSize
	frames := &eofReader{r: rd}
	src := cn.inflate.reader(frames, limit)
	var incremental *wsutil.UTF8Reader
	if hdr.OpCode == ws.OpText {
		incremental = wsutil.NewUTF8Reader(src)
		src = incremental
	}
	buf, err := readAll(src, firstChunk)
	switch {
	case err != nil:
		return Event{}, &Error{Code: CodeProtocol, Op: "inflate", Err: err}
	case int64(len(buf)) > limit:
		return Event{}, wsutil.ErrMessageTooLarge
	}
	if !frames.eof { // the deflate stream ended before the message did
		if _, err := io.Copy(io.Discard, frames); err != nil {
			return Event{}, err
		}
	}
	cn.inflate.inflated(buf)
	return makeMessage(hdr.OpCode, buf, incremental, cn.client.s.TextAsBytes)
}

// eofReader remembers whether its reader reached EOF: reading a wsutil
// message past its end is an error, not another EOF.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	if e.eof {
		return 0, io.EOF
	}
	n, err := e.r.Read(p)
	e.eof = err == io.EOF
	return n, err
}

// makeMessage checks text for UTF-8 (RFC 6455 8.1) and makes the event:
// text, or with asBytes (decode_text=False) binary.
func makeMessage(op ws.OpCode, buf []byte, incremental *wsutil.UTF8Reader, asBytes bool) (Event, error) {
	if op != ws.OpText {
		return Event{Kind: EventBinary, Data: buf}, nil
	}
	runes, ok := textRunes(buf)
	if !ok || (incremental != nil && !incremental.Valid()) {
		return Event{}, errInvalidUTF8
	}
	if asBytes {
		return Event{Kind: EventBinary, Data: buf}, nil
	}
	return Event{Kind: EventText, Data: buf, Runes: runes}, nil
}

// textRunes validates UTF-8 and counts code points. ASCII, the bulk of
// market data, takes one pass of 8 bytes at a time; anything else the
// standard library's two passes (32 bytes per step, then 8). Measured:
// RuneCount alone was 17% of the reader's CPU under a flood of 100-byte
// JSON messages.
func textRunes(p []byte) (int, bool) {
	i := 0
	for ; i+32 <= len(p); i += 32 {
		le := binary.LittleEndian
		if (le.Uint64(p[i:])|le.Uint64(p[i+8:])|le.Uint64(p[i+16:])|le.Uint64(p[i+24:]))&0x8080808080808080 != 0 {
			return slowRunes(p)
		}
	}
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 != 0 {
			return slowRunes(p)
		}
	}
	for ; i < len(p); i++ {
		if p[i] >= utf8.RuneSelf {
			return slowRunes(p)
		}
	}
	return len(p), true
}

func slowRunes(p []byte) (int, bool) {
	if !utf8.Valid(p) {
		return 0, false
	}
	return utf8.RuneCount(p), true
}

// readPayload reads the message. A small single frame, most of market
// data, goes straight into the connection's arena: one allocation per
// chunk of messages instead of one per message. Anything else grows a
// buffer as bytes arrive.
func (cn *conn) readPayload(rd *wsutil.Reader, src io.Reader, hdr ws.Header) ([]byte, error) {
	if !hdr.Fin || hdr.Length > arenaMax || src != io.Reader(rd) {
		return readAll(src, hdr.Length)
	}
	buf := cn.arena.alloc(int(hdr.Length))
	for got := 0; ; {
		// wsutil.Reader reports the end of the frame with the last bytes,
		// or with (0, io.EOF) for an empty frame.
		n, err := rd.Read(buf[got:])
		got += n
		switch {
		case err == io.EOF:
			return buf[:got], nil
		case err != nil:
			return nil, err
		}
	}
}

// arenaChunk and arenaMax size the arena: small enough that a few queued
// messages cannot pin much memory, large enough to amortize allocations.
const (
	arenaChunk = 16 << 10
	arenaMax   = 2 << 10
)

// arena hands out message buffers carved from shared chunks. A chunk is
// garbage once every message in it has been polled.
type arena struct{ free []byte }

func (a *arena) alloc(n int) []byte {
	if len(a.free) < n {
		a.free = make([]byte, arenaChunk)
	}
	p := a.free[:n:n]
	a.free = a.free[n:]
	return p
}

// readAll reads src to EOF into a buffer sized for the first frame (but
// never more than firstChunk before the bytes arrive).
func readAll(src io.Reader, first int64) ([]byte, error) {
	buf := make([]byte, 0, min(first, firstChunk)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// queueAll queues a burst's messages (already counted) under the overflow
// policy: what fits under one lock, waiting for room as deliver does.
func (c *Client) queueAll(cn *conn, evs []Event) error {
	if r := c.rot.Load(); r != nil {
		return c.queueRotating(r, cn, evs)
	}
	return c.queueRouted(cn, evs)
}

// queueRouted is queueAll for messages a rotation has routed.
func (c *Client) queueRouted(cn *conn, evs []Event) error {
	for len(evs) > 0 {
		n, wait, err := c.q.tryPutMany(evs)
		if err != nil {
			return err
		}
		evs = evs[n:]
		if wait {
			if !c.deliverBlocked(cn, evs[0]) {
				return nil // the connection is ending: so do the messages
			}
			evs = evs[1:]
		}
	}
	return nil
}

// deliver queues a message under the overflow policy; with
// OverflowBlock it waits while the queue is full, giving up only when the
// connection dies or a local close makes the queue refuse.
func (c *Client) deliver(cn *conn, ev Event) error {
	ev.Time = time.Now().UnixNano() // its last frame was just read (before it counts as read)
	c.stats.add(StatMessagesIn, 1)
	c.stats.add(StatBytesIn, int64(len(ev.Data)))
	c.lastData.Store(ev.Time)
	if c.rot.Load() != nil {
		return c.queueAll(cn, []Event{ev})
	}
	_, wait, err := c.q.tryPut(ev)
	if wait {
		c.deliverBlocked(cn, ev)
	}
	return err
}

// deliverBlocked waits for room in the queue, telling the heartbeat that
// the silence that follows is ours, not the peer's.
func (c *Client) deliverBlocked(cn *conn, ev Event) bool {
	start := time.Now()
	cn.readerBlocked.Store(true)
	ok := c.q.put(ev, cn.dead)
	end := time.Now()
	cn.unblockedAt.Store(end.UnixNano())
	cn.readerBlocked.Store(false)
	c.stats.add(StatReaderBlockedMillis, end.Sub(start).Milliseconds())
	return ok
}

// handleControl answers one control frame (RFC 6455 5.5). body is at most
// 125 bytes: ws.CheckHeader refused anything longer.
func (cn *conn) handleControl(hdr ws.Header, r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch hdr.OpCode {
	case ws.OpPing:
		// RFC 6455 5.5.2: answer with a pong carrying the same data. After
		// our close frame no pong is due (5.5.1), so that error is not one.
		cn.client.stats.add(StatPingsReceived, 1)
		if d := cn.client.controlGrant(); d > 0 { // send_rate counts pongs: this one goes out at its grant
			cn.client.group.Go("pong", func() {
				if awaitGrant(cn, d) {
					_ = cn.writeFrame(ws.OpPong, body) // a failure ends the connection; the reader sees it
				}
			})
			return nil
		}
		if err := cn.writeFrame(ws.OpPong, body); err != nil && !cn.closeSentErr(err) {
			return err
		}
	case ws.OpPong:
		cn.client.stats.add(StatPongsReceived, 1)
		cn.client.pong(body)
	case ws.OpClose:
		return cn.receiveClose(body)
	}
	return nil
}

func (cn *conn) closeSentErr(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Err == errCloseSent
}

// receiveClose handles the peer's close frame: RFC 6455 5.5.1 asks us to
// answer with a close frame, echoing the code, unless we sent one already.
func (cn *conn) receiveClose(body []byte) error {
	ce, err := parseClose(body)
	if err != nil {
		return err
	}
	cn.peerClose = ce // read by endCause after the reader has returned
	cn.firstClose.CompareAndSwap(int32(SideNone), int32(SideServer))
	cn.client.peerClosing(cn)
	if err := cn.writeClose(ce.Code, ""); err != nil && !cn.closeSentErr(err) {
		return err
	}
	return ce
}

// closeDeadline is when a close handshake that starts now must be over;
// zero for no limit.
func (c *Client) closeDeadline() time.Time {
	if c.s.CloseTimeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(c.s.CloseTimeout)
}
