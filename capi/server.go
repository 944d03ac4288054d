package main

// The test server's exports (steadyws.testing.Server): a WebSocket server
// on loopback that resets, blackholes, refuses, floods and closes on
// command. Client ids are those of sws_server_clients; -1 means every
// client.

/*
#include <stdint.h>
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"

	"github.com/steadyws/steadyws/core"
	"github.com/steadyws/steadyws/core/testserver"
)

// stopWait bounds how long stopping a test server waits for its goroutines.
const stopWait = 5 * time.Second

// withServer runs f on the test server of handle h under guard.
func withServer(h int64, errp unsafe.Pointer, f func(e *entry, s *testserver.Server) error) int32 {
	return guard(errp, func() error {
		e, err := lookup(h, kindServer)
		if err != nil {
			return err
		}
		return f(e, e.server)
	})
}

// serverErr gives the test server's errors their codes.
func serverErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, testserver.ErrStopped):
		return &core.Error{Code: core.CodeClosed, Op: op, Err: err}
	}
	return &core.Error{Code: core.CodeInvalidArgument, Op: op, Err: err}
}

func stopServer(s *testserver.Server) error {
	if !s.Stop(stopWait) {
		return &core.Error{Code: core.CodeTimeout, Op: "server_stop", Err: errors.New("goroutines still running")}
	}
	return nil
}

// sws_server_start starts a test server on 127.0.0.1 and a free port; free
// it with sws_free. max_message_size (1 B-1 GiB), max_received (messages
// kept for sws_server_recv) and max_clients (1-2^24 each) bound it; with
// expire_after_ms > 0 it closes each connection (1001) at that age.
//
//export sws_server_start
func sws_server_start(maxMessageSize int64, maxReceived int32, maxClients int32, expireAfterMs int64, outHandle unsafe.Pointer, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		if outHandle == nil {
			return invalid("out_handle", "NULL pointer")
		}
		switch {
		case maxMessageSize < 1 || maxMessageSize > 1<<30:
			return invalid("max_message_size", "must be between 1 and 1 GiB")
		case maxReceived < 1 || maxReceived > 1<<24:
			return invalid("max_received", "must be between 1 and 16,777,216")
		case maxClients < 1 || maxClients > 1<<24:
			return invalid("max_clients", "must be between 1 and 16,777,216")
		case expireAfterMs < 0 || expireAfterMs > 86_400_000*365:
			return invalid("expire_after", "must be between 0 (never) and 365 days")
		}
		s, err := testserver.Start(testserver.Options{
			MaxMessageSize: maxMessageSize, MaxReceived: int(maxReceived), MaxClients: int(maxClients),
			ExpireAfter: time.Duration(expireAfterMs) * time.Millisecond,
		})
		if err != nil {
			return &core.Error{Code: core.CodeNetwork, Op: "server_start", Err: err}
		}
		return store("out_handle", outHandle, register(&entry{kind: kindServer, server: s}))
	})
}

// sws_server_url copies the server's ws:// URL into buf (see sws_last_error
// for the buffer rules).
//
//export sws_server_url
func sws_server_url(h int64, buf unsafe.Pointer, cap int64, outLen unsafe.Pointer, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		return copyString(buf, cap, s.URL(), outLen)
	})
}

// sws_server_send sends one message to client (-1: every client): text if
// text != 0.
//
//export sws_server_send
func sws_server_send(h int64, client int64, data unsafe.Pointer, n int64, text int32, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		p, err := buffer("data", data, n)
		if err != nil {
			return err
		}
		return serverErr("send", s.Send(client, p, text != 0))
	})
}

// sws_server_recv takes the oldest message a client sent, waiting up to
// timeout_ms: its bytes into buf, its length, kind and client id through
// the out-pointers. SWS_ERR_TIMEOUT if none came; SWS_ERR_BUFFER_TOO_SMALL
// (with *out_len set) keeps the message for a retry with a larger buffer.
//
//export sws_server_recv
func sws_server_recv(h int64, timeout int32, buf unsafe.Pointer, cap int64, outLen, outText, outClient unsafe.Pointer, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(e *entry, s *testserver.Server) error {
		if outLen == nil || outText == nil || outClient == nil {
			return invalid("out", "NULL pointer")
		}
		dst, err := buffer("buf", buf, cap)
		if err != nil {
			return err
		}
		m, ok := e.takeHeld()
		if !ok {
			if err := timeoutMs(timeout); err != nil {
				return err
			}
			if m, ok = s.Recv(time.Duration(timeout) * time.Millisecond); !ok {
				return &core.Error{Code: core.CodeTimeout, Op: "server_recv", Err: errors.New("no message")}
			}
		}
		*(*int64)(outLen) = int64(len(m.Data))
		if len(m.Data) > len(dst) {
			e.hold(m)
			return &core.Error{Code: core.CodeBufferTooSmall, Op: "server_recv", Err: errors.New("message larger than buf")}
		}
		copy(dst, m.Data)
		*(*int32)(outText) = boolInt(m.Text)
		*(*int64)(outClient) = m.Client
		return nil
	})
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// sws_server_clients stores the ids of the open connections, oldest first,
// in out (up to cap) and their number in *out_n.
//
//export sws_server_clients
func sws_server_clients(h int64, out unsafe.Pointer, cap int32, outN unsafe.Pointer, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		ids := s.Clients()
		if err := store("out_n", outN, int32(len(ids))); err != nil {
			return err
		}
		if cap < 0 || (cap > 0 && out == nil) {
			return invalid("out", "NULL pointer or negative cap")
		}
		copy(unsafe.Slice((*int64)(out), cap), ids)
		return nil
	})
}

// sws_server_reset ends client's connection (-1: every client's) with a TCP
// reset.
//
//export sws_server_reset
func sws_server_reset(h int64, client int64, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		return serverErr("reset", s.Reset(client))
	})
}

// sws_server_close sends a close frame with code and reason to client (-1:
// every client), waits up to a second for the answer and closes TCP.
//
//export sws_server_close
func sws_server_close(h int64, client int64, code int32, reason unsafe.Pointer, reasonLen int64, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		r, err := buffer("reason", reason, reasonLen)
		if err != nil {
			return err
		}
		if err := core.ValidateCloseCode(int(code)); err != nil {
			return err
		}
		return serverErr("close", s.Close(client, int(code), string(r)))
	})
}

// sws_server_blackhole makes the server a black hole for ms milliseconds:
// nothing read is answered, nothing is sent, new handshakes wait.
//
//export sws_server_blackhole
func sws_server_blackhole(h int64, ms int64, errp unsafe.Pointer) int32 {
	return forServerPeriod(h, ms, errp, (*testserver.Server).Blackhole)
}

// forServerPeriod applies a fault of ms milliseconds (at most a day) to
// server h.
func forServerPeriod(h, ms int64, errp unsafe.Pointer, fault func(*testserver.Server, time.Duration)) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		if ms < 0 || ms > 86_400_000 {
			return invalid("seconds", "must be between 0 and 86400")
		}
		fault(s, time.Duration(ms)*time.Millisecond)
		return nil
	})
}

// sws_server_silence makes the server send no data for ms milliseconds,
// while it answers pings and keeps connections open.
//
//export sws_server_silence
func sws_server_silence(h int64, ms int64, errp unsafe.Pointer) int32 {
	return forServerPeriod(h, ms, errp, (*testserver.Server).Silence)
}

// sws_server_refuse answers the next times handshakes (times < 0: all until
// sws_server_accept) with status and, if retry_after >= 0, a Retry-After
// header of that many seconds.
//
//export sws_server_refuse
func sws_server_refuse(h int64, status, retryAfter, times int32, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		return serverErr("refuse", s.Refuse(int(status), int(retryAfter), int(times)))
	})
}

// sws_server_accept ends sws_server_refuse.
//
//export sws_server_accept
func sws_server_accept(h int64, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		s.Accept()
		return nil
	})
}

// sws_server_flood sends n market-data-like text messages of size bytes to
// client (-1: every client), in the background, as fast as each takes them.
//
//export sws_server_flood
func sws_server_flood(h int64, client int64, n int64, size int32, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		if n < 0 || size < 0 || size > 16<<20 {
			return invalid("flood", "n must be >= 0 and size 0-16 MiB")
		}
		return serverErr("flood", s.Flood(client, int(n), int(size)))
	})
}

// sws_server_counts stores handshakes, refused, live, received, dropped,
// max_per_second, max_frames_per_second and max_all_per_second in
// out[0..7] (cap at least 8).
//
//export sws_server_counts
func sws_server_counts(h int64, out unsafe.Pointer, cap int32, errp unsafe.Pointer) int32 {
	return withServer(h, errp, func(_ *entry, s *testserver.Server) error {
		if out == nil || cap < 8 {
			return invalid("out", "needs room for 8 counters")
		}
		n := s.Counts()
		copy(unsafe.Slice((*int64)(out), cap), []int64{
			n.Handshakes, n.Refused, n.Live, n.Received, n.Dropped, n.MaxPerSecond, n.MaxFramesPerSecond,
			n.MaxAllPerSecond,
		})
		return nil
	})
}
