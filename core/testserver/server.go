// Package testserver is a WebSocket server for rehearsing the bad day: it
// serves on loopback and, on command, resets its connections, goes silent,
// refuses handshakes, floods, or closes. It backs steadyws.testing.Server,
// so Python users get it with the library and need nothing else.
//
// Everything is bounded: clients, message sizes, the log of received
// messages, handshake sizes and writes. Every method is safe from any
// goroutine, and Stop never hangs: it closes every socket and waits a
// bounded time for the goroutines.
package testserver

import (
	"errors"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadyws/steadyws/core/internal/spawn"
)

// Options bound the server. The zero value of a field means its default.
type Options struct {
	// MaxMessageSize is the largest message a client may send. Defaults to
	// 16 MiB.
	MaxMessageSize int64
	// MaxReceived is how many received messages wait for Recv; beyond it
	// the oldest are dropped. Defaults to 10,000.
	MaxReceived int
	// MaxClients is how many sockets may be open at once; more are closed
	// on accept. Defaults to 1,024.
	MaxClients int
	// WriteTimeout bounds one Send to one client. Defaults to 5 s.
	WriteTimeout time.Duration
	// ExpireAfter closes each connection (1001, "connection expired") once
	// it is that old, as venues end connections after about 24 h. 0: never.
	ExpireAfter time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 16 << 20
	}
	if o.MaxReceived <= 0 {
		o.MaxReceived = 10_000
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 1024
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	return o
}

// Message is what a client sent.
type Message struct {
	Client int64
	Text   bool
	Data   []byte
}

// Panics is the number of goroutines of the server that panicked (and were
// recovered): a test server bug.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Counts are the server's counters.
type Counts struct {
	Handshakes int64 // handshakes accepted
	Refused    int64 // handshakes refused on command
	Live       int64 // connections open now
	Received   int64 // messages received
	Dropped    int64 // received messages dropped because nobody called Recv
	// MaxPerSecond is the most data messages one client sent within any
	// one second; MaxFramesPerSecond counts pings and pongs too (a venue's
	// rate limit may count them). Both are at most rateCap.
	MaxPerSecond       int64
	MaxFramesPerSecond int64
	// MaxAllPerSecond is the most data messages all clients together sent
	// within any one second: a budget shared by several connections.
	MaxAllPerSecond int64
}

// Server is a running test server.
type Server struct {
	o        Options
	ln       net.Listener
	received chan Message
	stopped  chan struct{}
	group    spawn.Group // every goroutine of the server; a panic in one is logged in Panics
	panics   atomic.Int64

	mu      sync.Mutex
	sockets map[net.Conn]struct{} // every accepted socket, upgraded or not
	clients map[int64]*client
	nextID  int64
	refusal refusal

	blackholeUntil atomic.Int64 // unix nanoseconds
	silentUntil    atomic.Int64 // unix nanoseconds
	maxPerSecond   atomic.Int64
	maxFrames      atomic.Int64
	maxAll         atomic.Int64
	allMu          sync.Mutex
	all            window // data messages of every client
	handshakes     atomic.Int64
	refused        atomic.Int64
	receivedN      atomic.Int64
	dropped        atomic.Int64
}

// ErrStopped is returned by methods called after Stop.
var ErrStopped = errors.New("the test server is stopped")

// Start listens on 127.0.0.1 on a free port.
func Start(o Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o = o.withDefaults()
	s := &Server{
		o: o, ln: ln, received: make(chan Message, o.MaxReceived), stopped: make(chan struct{}),
		sockets: map[net.Conn]struct{}{}, clients: map[int64]*client{}, nextID: 1,
	}
	s.group.OnPanic = func(error) { s.panics.Add(1) }
	s.group.Go("accept", s.accept)
	return s, nil
}

// URL is ws://127.0.0.1:port/.
func (s *Server) URL() string { return "ws://" + s.ln.Addr().String() + "/" }

func (s *Server) accept() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(conn) || !s.group.Go("serve", func() { s.serve(conn) }) {
			conn.Close()
		}
	}
}

// Clients lists the ids of the open connections, oldest first.
func (s *Server) Clients() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.clients))
	for id := range s.clients {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// targets returns the client id, or every client for id < 0.
func (s *Server) targets(id int64) ([]*client, error) {
	select {
	case <-s.stopped:
		return nil, ErrStopped
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 0 {
		out := make([]*client, 0, len(s.clients))
		for _, c := range s.clients {
			out = append(out, c)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
		return out, nil
	}
	if c, ok := s.clients[id]; ok {
		return []*client{c}, nil
	}
	return nil, errNoClient
}

var errNoClient = errors.New("no open connection with that client id")

// Send writes one message to client id, or to every client for id < 0.
// A client that does not take it within WriteTimeout is disconnected.
func (s *Server) Send(id int64, p []byte, text bool) error {
	cs, err := s.targets(id)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if s.quiet() {
			continue // the network eats it, or the venue sends nothing
		}
		if err := c.writeData(p, text, s.o.WriteTimeout); err != nil {
			c.kill(false)
		}
	}
	return nil
}

// Flood sends n text messages of size bytes, market-data-like JSON, to
// client id (or every client), as fast as each client takes them. It
// returns at once; the flood stops early if the client goes away.
func (s *Server) Flood(id int64, n, size int) error {
	cs, err := s.targets(id)
	if err != nil {
		return err
	}
	for _, c := range cs {
		s.group.Go("flood", func() { c.flood(n, size, s.quiet) })
	}
	return nil
}

// Reset ends client id's connection (every client's for id < 0) with a
// TCP reset: no close frame, no FIN.
func (s *Server) Reset(id int64) error {
	cs, err := s.targets(id)
	for _, c := range cs {
		c.kill(true)
	}
	return err
}

// Close sends a close frame with code and reason to client id (or every
// client), waits up to a second for the answer, and closes TCP.
func (s *Server) Close(id int64, code int, reason string) error {
	cs, err := s.targets(id)
	var g spawn.Group
	for _, c := range cs {
		g.Go("close", func() { c.closeHandshake(code, reason, time.Second) })
	}
	g.Wait()
	return err
}

// Blackhole makes the server a black hole for d: it reads and discards
// everything (pings get no pong), sends nothing, and holds new handshakes
// unanswered. Connections stay open: no FIN, no reset.
func (s *Server) Blackhole(d time.Duration) {
	s.blackholeUntil.Store(time.Now().Add(d).UnixNano())
}

func (s *Server) blackholed() bool { return time.Now().UnixNano() < s.blackholeUntil.Load() }

// Silence makes the server send no data for d while it stays healthy: it
// answers pings and keeps every connection open ("connected, but no
// data"). Send and Flood send nothing meanwhile.
func (s *Server) Silence(d time.Duration) {
	s.silentUntil.Store(time.Now().Add(d).UnixNano())
}

// quiet reports whether data must not be sent now.
func (s *Server) quiet() bool {
	now := time.Now().UnixNano()
	return now < s.blackholeUntil.Load() || now < s.silentUntil.Load()
}

// noteRate records a client's highest count of messages in one second.
func noteRate(max *atomic.Int64, n int64) {
	for {
		old := max.Load()
		if n <= old || max.CompareAndSwap(old, n) {
			return
		}
	}
}

// waitOutBlackhole holds a new connection until the black hole ends; false
// if the server stopped meanwhile.
func (s *Server) waitOutBlackhole() bool {
	for s.blackholed() {
		select {
		case <-s.stopped:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// Recv returns the oldest message not yet received, waiting up to timeout
// (0: only what has arrived).
func (s *Server) Recv(timeout time.Duration) (Message, bool) {
	select {
	case m := <-s.received:
		return m, true
	default:
	}
	if timeout <= 0 {
		return Message{}, false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-s.received:
		return m, true
	case <-t.C:
		return Message{}, false
	case <-s.stopped:
		return Message{}, false
	}
}

// deliver logs a received message, dropping the oldest when full.
func (s *Server) deliver(m Message) {
	s.receivedN.Add(1)
	for {
		select {
		case s.received <- m:
			return
		default:
		}
		select {
		case <-s.received:
			s.dropped.Add(1)
		default:
		}
	}
}

// Counts returns the counters.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	live := int64(len(s.clients))
	s.mu.Unlock()
	return Counts{
		Handshakes: s.handshakes.Load(), Refused: s.refused.Load(), Live: live,
		Received: s.receivedN.Load(), Dropped: s.dropped.Load(),
		MaxPerSecond: s.maxPerSecond.Load(), MaxFramesPerSecond: s.maxFrames.Load(), MaxAllPerSecond: s.maxAll.Load(),
	}
}

// Stop closes the listener and every connection, and waits up to timeout
// for the server's goroutines; false if some are still running.
func (s *Server) Stop(timeout time.Duration) bool {
	select {
	case <-s.stopped:
	default:
		close(s.stopped)
	}
	s.ln.Close()
	s.mu.Lock()
	for conn := range s.sockets {
		conn.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	spawn.Go("stop", nil, func() { s.group.Close(); close(done) })
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// track records an accepted socket, refusing it past MaxClients or after
// Stop.
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stopped:
		return false
	default:
	}
	if len(s.sockets) >= s.o.MaxClients {
		return false
	}
	s.sockets[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.sockets, conn)
	s.mu.Unlock()
}

func (s *Server) add(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.id = s.nextID
	s.nextID++
	s.clients[c.id] = c
}

func (s *Server) remove(c *client) {
	s.mu.Lock()
	delete(s.clients, c.id)
	s.mu.Unlock()
}
