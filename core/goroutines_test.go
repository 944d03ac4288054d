package core

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steadyws/steadyws/core/wstest"
)

// TestNoBareGoStatements: every goroutine of the engine, the test server
// and the C API starts through package spawn, which recovers panics (a
// panic in any other goroutine would abort the host interpreter) and lets
// its owner wait for it.
func TestNoBareGoStatements(t *testing.T) {
	var found []string
	for _, root := range []string{".", "../capi"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			if filepath.ToSlash(path) == "internal/spawn/spawn.go" {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if g, ok := n.(*ast.GoStmt); ok {
					found = append(found, fset.Position(g.Pos()).String())
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) > 0 {
		t.Fatalf("go statements outside package spawn:\n%s", strings.Join(found, "\n"))
	}
}

// TestDoneMeansEveryGoroutineReturned: when Done is closed, no goroutine
// of the client is left -- not the heartbeat, not the close handshake's
// (0.1.0: the heartbeat was still alive in 87 of 200 runs).
func TestDoneMeansEveryGoroutineReturned(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	for i := range 200 {
		c := open(t, Options{URL: srv.URL, PingInterval: 10 * time.Millisecond})
		mustOpen(t, c)
		if i%2 == 0 {
			_ = c.Close(CloseNormal, "")
		} else {
			c.Abort(waitLong)
		}
		<-c.Done()
		if n := c.group.Running(); n != 0 {
			t.Fatalf("run %d: %d goroutines still running after Done", i, n)
		}
	}
}

// TestAPanicInAGoroutineEndsOnlyTheConnection: a panic in one of the
// connection's goroutines is recovered, ends that connection with
// CodeInternal (close 1011 would need a live socket: it is just lost), and
// the reconnect policy takes over.
func TestAPanicInAGoroutineEndsOnlyTheConnection(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) { wstest.Echo(c) })
	c := open(t, Options{URL: srv.URL, Reconnect: &fast})
	mustOpen(t, c)
	c.group.Go("boom", func() { panic("boom") })
	ev := nextOf(t, c, EventDisconnected)
	if ev.End.Err != CodeInternal || !strings.Contains(ev.End.Detail, "boom") {
		t.Fatalf("disconnected: %+v", ev.End)
	}
	nextOf(t, c, EventOpen)
}

// TestASupervisorPanicEndsTheClient: a panic that escapes the supervisor
// ends its connection too (nobody would read it again) and the client, with
// CodeInternal, instead of leaving an open socket without a reader.
func TestASupervisorPanicEndsTheClient(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	c := open(t, Options{URL: srv.URL, PingInterval: 50 * time.Millisecond})
	mustOpen(t, c)
	c.supervisorPanicked(errors.New("boom"))
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not end")
	}
	if end, _ := c.End(); end.Err != CodeInternal || !strings.Contains(end.Detail, "boom") {
		t.Fatalf("end %+v", end)
	}
}
