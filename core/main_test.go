package core

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestMain fails the package if goroutines outlive the tests: every
// goroutine of a connection must end with it.
func TestMain(m *testing.M) {
	// os/signal starts one watcher goroutine for the life of the process on
	// first use (the SIGPIPE test uses it): count it in the baseline.
	watch := make(chan os.Signal, 1)
	signal.Notify(watch, syscall.SIGPIPE)
	signal.Stop(watch)
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if err := settleGoroutines(base, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func settleGoroutines(base int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("leaked goroutines: %d > %d\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
