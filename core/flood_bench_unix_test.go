//go:build unix

package core

import (
	"bytes"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/steadyws/steadyws/core/wstest"
)

// BenchmarkFloodPoll is the engine's ceiling: a server writes 100-byte
// text messages as fast as loopback takes them (pre-encoded, 1 MiB
// writes), and a Go consumer drains them through Poll in batches of 1024,
// the way the C API does. Reports messages per second.
func BenchmarkFloodPoll(b *testing.B) {
	frame, err := ws.CompileFrame(ws.NewTextFrame(bytes.Repeat([]byte("x"), 100)))
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat(frame, (1<<20)/len(frame))
	perChunk := (1 << 20) / len(frame)
	srv := wstest.New(b, func(c net.Conn) {
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	c, err := Open(Options{URL: srv.URL, MaxQueue: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Abort(time.Second)
	dst := make([]Event, 1024)
	poll := func(want int) {
		for got := 0; got < want; {
			n, _, err := c.Poll(dst, 1<<20, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			for _, ev := range dst[:n] {
				if ev.Kind == EventText {
					got++
				}
			}
		}
	}
	poll(perChunk) // connected and flowing
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	poll(b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// cpuTime is the process's CPU time so far (user and system, every thread:
// the server's writes included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
