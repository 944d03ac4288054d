// Package wstest runs real WebSocket servers on loopback for the Go tests
// of core and capi: gobwas/ws on the server side, one handler per
// connection.
package wstest

import (
	"fmt"
	"net"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core/internal/spawn"
)

// Server accepts connections on 127.0.0.1 until the test ends.
type Server struct {
	ln    net.Listener
	URL   string
	group spawn.Group // a handler's panic fails the test
}

// New starts a server whose connections, once upgraded, are given to
// handler; it accepts any subprotocol offered first.
func New(t testing.TB, handler func(c net.Conn)) *Server {
	t.Helper()
	u := ws.Upgrader{Protocol: func([]byte) bool { return true }}
	return NewRaw(t, func(_ int, c net.Conn) {
		if _, err := u.Upgrade(c); err == nil {
			handler(c)
		}
	})
}

// NewRaw starts a server that gives each TCP connection, numbered from 0,
// to handler before any handshake.
func NewRaw(t testing.TB, handler func(i int, c net.Conn)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln, URL: "ws://" + ln.Addr().String() + "/"}
	s.group.OnPanic = func(err error) { t.Errorf("test server handler: %v", err) }
	s.group.Go("accept", func() { s.accept(handler) })
	t.Cleanup(func() {
		ln.Close()
		s.group.Close()
	})
	return s
}

func (s *Server) accept(handler func(i int, c net.Conn)) {
	for i := 0; ; i++ {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.group.Go("handler", func() {
			defer c.Close()
			handler(i, c)
		})
	}
}

// Close stops accepting: later dials are refused.
func (s *Server) Close() { s.ln.Close() }

// Refuse answers the opening handshake with an HTTP status and extra
// header lines ("Name: value\r\n" each).
func Refuse(c net.Conn, status int, header string) {
	_, _ = c.Read(make([]byte, 4096))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d Refused\r\n%sContent-Length: 0\r\n\r\n", status, header)
}

// Echo answers every message and the close handshake.
func Echo(c net.Conn) {
	for {
		msg, op, err := wsutil.ReadClientData(c)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(c, op, msg); err != nil {
			return
		}
	}
}
