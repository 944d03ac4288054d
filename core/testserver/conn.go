package testserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// handshakeTimeout and maxHandshake bound a client's opening handshake.
const (
	handshakeTimeout = 10 * time.Second
	maxHandshake     = 64 << 10
)

// refusal is what Refuse asked for: answer the next handshakes with status.
type refusal struct {
	status     int
	retryAfter int // seconds; < 0: no Retry-After header
	times      int // handshakes left to refuse; < 0: until Accept
}

// Refuse answers the next times handshakes (times < 0: every one until
// Accept) with an HTTP status, and Retry-After if retryAfter >= 0.
func (s *Server) Refuse(status, retryAfter, times int) error {
	switch {
	case status < 200 || status > 599 || status == http.StatusSwitchingProtocols:
		return fmt.Errorf("status must be 200-599 and not 101, got %d", status)
	case retryAfter < -1 || retryAfter > 86400:
		return fmt.Errorf("retry_after must be 0-86400 seconds or None, got %d", retryAfter)
	case times == 0 || times < -1:
		return fmt.Errorf("times must be positive or None, got %d", times)
	}
	s.mu.Lock()
	s.refusal = refusal{status: status, retryAfter: retryAfter, times: times}
	s.mu.Unlock()
	return nil
}

// Accept ends a Refuse: handshakes succeed again.
func (s *Server) Accept() {
	s.mu.Lock()
	s.refusal = refusal{}
	s.mu.Unlock()
}

// takeRefusal returns the refusal for this handshake, if any.
func (s *Server) takeRefusal() (refusal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refusal
	if r.status == 0 || r.times == 0 {
		return refusal{}, false
	}
	if r.times > 0 {
		s.refusal.times--
	}
	return r, true
}

// serve runs one TCP connection: the handshake, then the client's frames.
func (s *Server) serve(conn net.Conn) {
	defer s.untrack(conn)
	if !s.waitOutBlackhole() {
		return
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReader(io.LimitReader(conn, maxHandshake))
	if r, ok := s.takeRefusal(); ok {
		s.refused.Add(1)
		refuse(conn, br, r)
		return
	}
	// The client is registered, with its write lock held, before the 101
	// goes out: a Send right after the client saw the handshake complete
	// reaches it, and no frame can overtake the 101.
	c := &client{conn: conn, sentClose: make(chan struct{}), done: make(chan struct{})}
	c.writeMu.Lock()
	s.add(c)
	defer s.remove(c)
	defer close(c.done)
	// The handshake counts before the 101 goes out: a client that saw it
	// complete finds it counted.
	u := ws.Upgrader{OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
		s.handshakes.Add(1)
		return ws.HandshakeHeaderString(""), nil
	}}
	_, err := u.Upgrade(readWriter{br, conn})
	c.writeMu.Unlock()
	if err != nil {
		return
	}
	_ = conn.SetDeadline(time.Time{})
	if s.o.ExpireAfter > 0 {
		s.group.Go("expire", func() { c.expire(s.o.ExpireAfter) })
	}
	c.readLoop(s, bufio.NewReader(conn))
}

// readWriter reads the handshake through the bounded buffer and writes to
// the socket.
type readWriter struct {
	io.Reader
	io.Writer
}

func refuse(conn net.Conn, br *bufio.Reader, r refusal) {
	if _, err := http.ReadRequest(br); err != nil {
		return
	}
	var extra strings.Builder
	if r.retryAfter >= 0 {
		extra.WriteString("Retry-After: " + strconv.Itoa(r.retryAfter) + "\r\n")
	}
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n",
		r.status, http.StatusText(r.status), extra.String())
}

// client is one open connection.
type client struct {
	id        int64
	conn      net.Conn
	writeMu   sync.Mutex // one frame at a time
	closing   sync.Once
	sentClose chan struct{} // closed once we sent a close frame
	done      chan struct{} // closed when the connection ended
}

// readLoop reads the client's frames until the connection ends (RFC 6455
// 5.5: pings answered, a close frame answered and ended).
func (c *client) readLoop(s *Server, src io.Reader) {
	rd := wsutil.Reader{Source: src, State: ws.StateServerSide, CheckUTF8: true, MaxMessageSize: s.o.MaxMessageSize}
	var messages, frames window
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			return
		}
		now := time.Now()
		if hdr.OpCode != ws.OpClose {
			noteRate(&s.maxFrames, frames.add(now))
		}
		if !hdr.OpCode.IsControl() && hdr.OpCode != ws.OpContinuation {
			noteRate(&s.maxPerSecond, messages.add(now))
			s.allMu.Lock()
			noteRate(&s.maxAll, s.all.add(now))
			s.allMu.Unlock()
		}
		if s.blackholed() {
			if _, err := io.Copy(io.Discard, &rd); err != nil {
				return
			}
			continue
		}
		if hdr.OpCode.IsControl() {
			if !c.control(hdr, &rd) {
				return
			}
			continue
		}
		data, err := io.ReadAll(&rd)
		if err != nil {
			return
		}
		s.deliver(Message{Client: c.id, Text: hdr.OpCode == ws.OpText, Data: data})
	}
}

// control answers a ping with a pong and a close frame with a close frame
// (unless we sent ours first); false when the connection is over.
func (c *client) control(hdr ws.Header, r io.Reader) bool {
	body, err := io.ReadAll(r)
	if err != nil {
		return false
	}
	switch hdr.OpCode {
	case ws.OpPing:
		return c.write(ws.OpPong, body, time.Second) == nil
	case ws.OpClose:
		if !c.closeSent() {
			code, _ := ws.ParseCloseFrameData(body)
			_ = c.write(ws.OpClose, ws.NewCloseFrameBody(code, ""), time.Second)
		}
		return false
	}
	return true
}

func (c *client) write(op ws.OpCode, p []byte, timeout time.Duration) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	return ws.WriteFrame(c.conn, ws.NewFrame(op, true, p))
}

func (c *client) writeData(p []byte, text bool, timeout time.Duration) error {
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	return c.write(op, p, timeout)
}

// flood writes n messages without a deadline: a slow consumer slows the
// flood (TCP backpressure) instead of ending the connection.
func (c *client) flood(n, size int, blackholed func() bool) {
	for i := range n {
		select {
		case <-c.done:
			return
		default:
		}
		if blackholed() {
			continue
		}
		c.writeMu.Lock()
		_ = c.conn.SetWriteDeadline(time.Time{})
		err := ws.WriteFrame(c.conn, ws.NewTextFrame(Tick(i, size)))
		c.writeMu.Unlock()
		if err != nil {
			return
		}
	}
}

// Tick is a market-data-like JSON message of size bytes (at least its
// fields'), numbered seq.
func Tick(seq, size int) []byte {
	b := fmt.Appendf(nil, `{"e":"trade","s":"BTCUSDT","seq":%d,"p":"%d.%02d","pad":"`, seq, 60000+seq%100, seq%97)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

func (c *client) closeSent() bool {
	select {
	case <-c.sentClose:
		return true
	default:
		return false
	}
}

// closeHandshake sends a close frame and waits up to wait for the client's
// answer before closing TCP (RFC 6455 7.1.1: the server closes first).
func (c *client) closeHandshake(code int, reason string, wait time.Duration) {
	c.closing.Do(func() { close(c.sentClose) })
	if c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), reason), wait) == nil {
		select {
		case <-c.done:
		case <-time.After(wait):
		}
	}
	c.kill(false)
}

// expire closes the connection with 1001 once it is age old (unless it
// ended before).
func (c *client) expire(age time.Duration) {
	t := time.NewTimer(age)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.closeHandshake(1001, "connection expired", time.Second)
	}
}

// rateCap bounds a window: a client that sends more than this in one
// second is reported as sending rateCap.
const rateCap = 1 << 16

// window counts the frames of the last second, for Counts.MaxPerSecond.
type window struct {
	at   []time.Time // a ring of arrival times, oldest at head
	head int
}

// add records an arrival at now; the number of arrivals in the second up
// to now.
func (w *window) add(now time.Time) int64 {
	for len(w.at) > 0 && now.Sub(w.at[w.head]) >= time.Second {
		w.head++
		if w.head == len(w.at) {
			w.at, w.head = w.at[:0], 0
		}
	}
	if w.head > 0 && len(w.at) == cap(w.at) { // compact before growing
		n := copy(w.at, w.at[w.head:])
		w.at, w.head = w.at[:n], 0
	}
	if len(w.at)-w.head < rateCap {
		w.at = append(w.at, now)
	}
	return int64(len(w.at) - w.head)
}

// kill closes the socket, with a TCP reset (SO_LINGER 0) if rst.
func (c *client) kill(rst bool) {
	if tc, ok := c.conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = c.conn.Close()
}
