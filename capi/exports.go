package main

/*
#include <stdint.h>
#include "sws_abi.h"

// steadyws C API.
//
// Conventions
// - Every function returns an int32_t error code (enum sws_code); 0 is OK.
// - The last parameter of every function is a `sws_error *err` (may be
//   NULL): on failure it gets the message and, for SWS_ERR_CLOSED, how the
//   connection ended. It belongs to the call, so threads never see each
//   other's errors.
// - Handles are int64_t values; an unknown, freed or garbage handle returns
//   SWS_ERR_BAD_HANDLE; nothing is ever a pointer.
// - Results are copied into buffers the caller owns; the library keeps no
//   pointer to them after the call returns.
// - Every function is safe to call from any thread, concurrently, but a
//   handle must not be freed while another thread is inside a call on it.
// - No function blocks longer than the timeout it is given; a timeout of 0
//   only checks.
// - Do not call into the library in a child process after fork().

// Called from an engine thread when a handle's queue becomes non-empty.
// It must return quickly; it may call sws_poll with timeout 0.
typedef void (*sws_notify_fn)(int64_t handle, void *user);
*/
import "C"

import (
	"errors"
	"runtime"
	"time"
	"unsafe"

	"github.com/steadyws/steadyws/core"
)

// freeWait bounds how long sws_free waits for a connection's goroutines.
const freeWait = 2 * time.Second

// sws_abi_version returns the ABI version of this library (not an error code).
//
//export sws_abi_version
func sws_abi_version() int32 { return core.ABIVersion }

// sws_connect validates a JSON config (an object: "url" and the options of
// the option table, named as in Python; see the README) and stores a new
// handle in *out_handle. With observe_hub != 0 the connection's lifecycle
// (and its header requests) also go to that hub as they happen, with the
// member id in *out_observer; with consume_hub != 0 its whole event stream
// goes to that hub instead of sws_poll, with the member id in
// *out_consumer (the same hub may do both: one member). It does no I/O
// itself: the outcome is an OPEN or a CLOSED event. A value of the wrong
// type fails with SWS_ERR_TYPE, a bad value with SWS_ERR_INVALID_ARGUMENT;
// the message names the option.
//
//export sws_connect
func sws_connect(config unsafe.Pointer, configLen int64, observeHub, consumeHub int64, outHandle, outObserver, outConsumer, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		if outHandle == nil {
			return invalid("out_handle", "NULL pointer")
		}
		raw, err := buffer("config", config, configLen)
		if err != nil {
			return err
		}
		opts, err := core.ParseOptions(raw)
		if err != nil {
			return err
		}
		c, err := core.NewClient(opts)
		if err != nil {
			return err
		}
		if err := join(c, observeHub, consumeHub, outObserver, outConsumer); err != nil {
			core.DetachClient(c)
			return err
		}
		c.Start()
		return store("out_handle", outHandle, register(&entry{kind: kindClient, client: c}))
	})
}

// join attaches c to its hubs before it starts, so they see every event.
func join(c *core.Client, observeHub, consumeHub int64, outObserver, outConsumer unsafe.Pointer) error {
	if (observeHub != 0 && outObserver == nil) || (consumeHub != 0 && outConsumer == nil) {
		return invalid("out_member", "NULL pointer")
	}
	if observeHub != 0 && observeHub != consumeHub { // first: a consumer that comes first observes too
		id, err := attach(c, observeHub, false)
		if err != nil {
			return err
		}
		*(*int32)(outObserver) = int32(id)
	}
	if consumeHub != 0 {
		id, err := attach(c, consumeHub, true)
		if err != nil {
			return err
		}
		*(*int32)(outConsumer) = int32(id)
		if consumeHub == observeHub {
			*(*int32)(outObserver) = int32(id)
		}
	}
	return nil
}

func attach(c *core.Client, hub int64, consume bool) (uint32, error) {
	h, err := lookup(hub, kindHub)
	if err != nil {
		return 0, err
	}
	return h.hub.Attach(c, consume)
}

// sws_validate checks a JSON object of options without a URL (for example
// {"reconnect": {...}}) as sws_connect would, without connecting.
//
//export sws_validate
func sws_validate(config unsafe.Pointer, configLen int64, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		raw, err := buffer("config", config, configLen)
		if err != nil {
			return err
		}
		return core.CheckOptions(raw)
	})
}

// sws_check_close checks a close code (1000-1003, 1007-1014, 3000-4999) and
// a UTF-8 reason of at most 123 bytes, as sws_close would.
//
//export sws_check_close
func sws_check_close(code int32, reason unsafe.Pointer, reasonLen int64, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		r, err := buffer("reason", reason, reasonLen)
		if err != nil {
			return err
		}
		return core.CheckClose(int(code), string(r))
	})
}

// sws_send writes one message (flags: enum sws_send_flags). It never queues
// it for later: SWS_ERR_NOT_CONNECTED while (re)connecting or while a new
// connection waits for sws_ready -- unless opening is that connection's
// number (from its OPEN event): the sends of its on_open go out --, and
// SWS_ERR_CLOSED once the connection has ended. With SWS_SEND_NO_WAIT it
// returns SWS_ERR_WOULD_BLOCK instead of waiting for another write.
//
//export sws_send
func sws_send(h int64, data unsafe.Pointer, n int64, flags, opening int32, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		p, err := buffer("data", data, n)
		if err != nil {
			return err
		}
		return e.client.Send(p, core.SendFlags(flags), int(opening))
	})
}

// sws_send_batch writes count messages in one call: their payloads back to
// back in data (n bytes), described by 2 uint32 words each in meta: length,
// text flag. They are written under one lock, in as few socket writes as
// possible; nothing is written if any message is invalid. flags and
// opening as for sws_send (its SWS_SEND_TEXT is ignored).
//
//export sws_send_batch
func sws_send_batch(h int64, data unsafe.Pointer, n int64, meta unsafe.Pointer, count, flags, opening int32, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		msgs, text, err := splitBatch(data, n, meta, count)
		if err != nil {
			return err
		}
		return e.client.SendBatch(msgs, text, core.SendFlags(flags)&^core.SendText, int(opening))
	})
}

// splitBatch views the caller's batch as messages without copying.
func splitBatch(data unsafe.Pointer, n int64, meta unsafe.Pointer, count int32) ([][]byte, []bool, error) {
	if count <= 0 || meta == nil {
		return nil, nil, invalid("count", "need at least one message and its meta words")
	}
	all, err := buffer("data", data, n)
	if err != nil {
		return nil, nil, err
	}
	words := unsafe.Slice((*uint32)(meta), int(count)*2)
	msgs, text := make([][]byte, count), make([]bool, count)
	off := int64(0)
	for i := range msgs {
		size := int64(words[2*i])
		if off+size > n {
			return nil, nil, invalid("meta", "lengths exceed the data")
		}
		msgs[i], text[i] = all[off:off+size:off+size], words[2*i+1] != 0
		off += size
	}
	if off != n {
		return nil, nil, invalid("meta", "lengths do not add up to the data")
	}
	return msgs, text, nil
}

// sws_poll waits up to timeout_ms (0: only checks) for events and copies up
// to max_events of them into meta (SWS_META_WORDS words each) and data
// (data_cap bytes). *out_count gets the number of events, *out_len the data
// bytes used. Returns SWS_ERR_BUFFER_TOO_SMALL with *out_len = bytes needed
// when the next event does not fit (it stays queued), and SWS_ERR_CLOSED
// once the CLOSED event has been delivered. The messages of a batch count
// against max_queue and max_queue_bytes until the next sws_poll.
//
// With SWS_POLL_FAST in flags, when nothing is queued, the calling thread
// reads what the socket has itself; waiting, it waits on the wakeup fd and
// the socket with poll(2), and reads the frames as soon as they arrive,
// without the engine's reader. With timeout_ms 0 it does not wait, and
// *out_gen (not NULL) gets the connection whose socket (sws_socket_fd) the
// caller may wait on, with the wakeup fd, before the next call (an event
// loop; 0: the wakeup fd alone). Between such calls the engine's reader
// leaves the socket to the caller, and reads what the caller does not come
// for (see core/turn.go).
//
//export sws_poll
func sws_poll(h int64, meta unsafe.Pointer, maxEvents int32, data unsafe.Pointer, dataCap int64, timeout, flags int32, outCount, outLen, outGen, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		out, err := newBatch(meta, maxEvents, data, dataCap, timeout, outCount, outLen)
		if err != nil {
			return err
		}
		e.pollMu.Lock()
		defer e.pollMu.Unlock()
		events, _ := e.events(int(maxEvents))
		if core.PollFlags(flags)&core.PollFast == 0 {
			n, need, err := e.client.Poll(events, len(out.data), time.Duration(timeout)*time.Millisecond)
			return out.fill(events, n, need, err)
		}
		if outGen == nil {
			return invalid("out_gen", "NULL pointer")
		}
		if timeout > 0 { // wait here, on the wakeup fd and the socket
			fd, err := e.wakeupFD(func(s core.Signal) { e.client.SetSignal(s) })
			if err != nil {
				return err
			}
			*(*int32)(outGen) = 0
			n, need, err := e.client.PollWait(events, len(out.data), time.Duration(timeout)*time.Millisecond, int(fd))
			return out.fill(events, n, need, err)
		}
		n, need, gen, err := e.client.PollFast(events, len(out.data))
		*(*int32)(outGen) = int32(gen)
		return out.fill(events, n, need, err)
	})
}

// sws_socket_fd stores in *out_fd a new descriptor of connection gen's
// socket (gen from sws_poll's *out_gen), to wait on for readability between
// SWS_POLL_FAST polls; the caller owns it and closes it. NOT_CONNECTED if
// that connection is no longer open.
//
//export sws_socket_fd
func sws_socket_fd(h int64, gen int32, outFd, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		if outFd == nil {
			return invalid("out_fd", "NULL pointer")
		}
		fd, err := e.client.SocketFD(int(gen))
		if err != nil {
			return err
		}
		return store("out_fd", outFd, int32(fd))
	})
}

// batch is a caller's poll buffers.
type batch struct {
	words           []uint32
	data            []byte
	outCount, outLn unsafe.Pointer
}

func newBatch(meta unsafe.Pointer, maxEvents int32, data unsafe.Pointer, dataCap int64, timeout int32, outCount, outLen unsafe.Pointer) (*batch, error) {
	switch {
	case outCount == nil || outLen == nil:
		return nil, invalid("out_count", "NULL pointer")
	case maxEvents <= 0 || meta == nil:
		return nil, invalid("max_events", "need a meta buffer for at least one event")
	}
	if err := timeoutMs(timeout); err != nil {
		return nil, err
	}
	dst, err := buffer("data", data, dataCap)
	if err != nil {
		return nil, err
	}
	words := unsafe.Slice((*uint32)(meta), int(maxEvents)*core.MetaWords)
	return &batch{words: words, data: dst, outCount: outCount, outLn: outLen}, nil
}

// fill encodes n polled events (or the size in need) for the caller and
// drops the engine's references to them.
func (b *batch) fill(events []core.Event, n, need int, err error) error {
	*(*int32)(b.outCount), *(*int64)(b.outLn) = 0, int64(need)
	if err != nil {
		return err
	}
	count, size := core.EncodeEvents(events[:n], b.words, b.data)
	clear(events[:n])
	*(*int32)(b.outCount), *(*int64)(b.outLn) = int32(count), int64(size)
	return nil
}

// sws_close starts the close handshake with code (1000-1003, 1007-1014,
// 3000-4999) and a UTF-8 reason of at most 123 bytes, and returns at once.
// Idempotent. Use sws_wait to wait for the end.
//
//export sws_close
func sws_close(h int64, code int32, reason unsafe.Pointer, reasonLen int64, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		r, err := buffer("reason", reason, reasonLen)
		if err != nil {
			return err
		}
		return e.client.Close(int(code), string(r))
	})
}

// sws_wait waits up to timeout_ms (0: only checks) for the connection to
// end completely (close handshake over, socket closed, goroutines gone).
// Returns OK when it has, SWS_ERR_TIMEOUT when not yet.
//
//export sws_wait
func sws_wait(h int64, timeout int32, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		if err := timeoutMs(timeout); err != nil {
			return err
		}
		select {
		case <-e.client.Done():
			return nil
		default:
		}
		t := time.NewTimer(time.Duration(timeout) * time.Millisecond)
		defer t.Stop()
		select {
		case <-e.client.Done():
			return nil
		case <-t.C:
			return &core.Error{Code: core.CodeTimeout, Op: "wait", Err: errTimeout}
		}
	})
}

// sws_ready tells connection number conn of h (from its OPEN event) that
// its on_open returned: every sender may use it now.
//
//export sws_ready
func sws_ready(h int64, conn int32, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		e.client.Ready(int(conn))
		return nil
	})
}

// sws_rotate replaces h's open connection make-before-break: a second
// connection opens (OPEN, its on_open), delivery switches to it (ROTATED),
// the old one closes with 1000. NOT_CONNECTED unless one is open; OK if a
// rotation started or is under way.
//
//export sws_rotate
func sws_rotate(h int64, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error { return e.client.Rotate() })
}

// sws_provide_headers answers header request req (a HEADERS event of a hub
// observer) with a JSON array of [name, value] pairs, or, with failure_len
// > 0, says why there are none: the attempt then fails and the backoff
// schedule goes on. Invalid headers fail the attempt and the call.
//
//export sws_provide_headers
func sws_provide_headers(h int64, req int32, pairs unsafe.Pointer, pairsLen int64, failure unsafe.Pointer, failureLen int64, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		raw, err := buffer("pairs", pairs, pairsLen)
		if err != nil {
			return err
		}
		why, err := buffer("failure", failure, failureLen)
		if err != nil {
			return err
		}
		var list [][2]string
		if len(why) == 0 {
			if list, err = core.ParseHeaderPairs(raw); err != nil {
				_ = e.client.ProvideHeaders(int(req), nil, err.Error())
				return err
			}
		}
		return e.client.ProvideHeaders(int(req), list, string(why))
	})
}

// sws_free releases a handle of any kind. A connection still running is
// aborted without a close handshake and its goroutines awaited; a hub
// detaches its members; a test server stops. The handle (and its wakeup fd)
// is invalid afterwards. Returns SWS_ERR_TIMEOUT if goroutines did not end
// in time: then keep any callback you registered alive, it may still be
// called.
//
//export sws_free
func sws_free(h int64, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		e, err := unregister(h)
		if err != nil {
			return err
		}
		defer e.closeWakeup()
		switch e.kind {
		case kindServer:
			return stopServer(e.server)
		case kindHub:
			e.hub.Close()
			return nil
		case kindRateLimit:
			return nil // its connections keep the limit itself
		}
		core.DetachClient(e.client)
		e.client.SetNotify(nil)
		stopped := e.client.Abort(freeWait)
		e.client.SetSignal(nil)
		if !stopped {
			return &core.Error{Code: core.CodeTimeout, Op: "free", Err: errors.New("goroutines still running")}
		}
		return nil
	})
}

// sws_state stores the connection state (enum sws_state) in *out.
//
//export sws_state
func sws_state(h int64, out, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		return store("out", out, int32(e.client.State()))
	})
}

// sws_stats copies up to cap int64 counters into out (named by the ABI's
// stat names) and stores the number of counters the library has in *out_n.
//
//export sws_stats
func sws_stats(h int64, out unsafe.Pointer, cap int32, outN, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		s := e.client.Stats()
		return copyInt64s(out, cap, s[:], outN)
	})
}

// sws_runtime_stats copies process-wide counters: goroutines, live handles.
//
//export sws_runtime_stats
func sws_runtime_stats(out unsafe.Pointer, cap int32, outN, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		return copyInt64s(out, cap, []int64{int64(runtime.NumGoroutine()), int64(liveHandles())}, outN)
	})
}

// sws_wakeup_fd stores in *out_fd an eventfd that is readable exactly while
// events are waiting on h, for event loops. The library owns it and closes
// it in sws_free; do not read from or close it.
//
//export sws_wakeup_fd
func sws_wakeup_fd(h int64, outFd, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		if outFd == nil {
			return invalid("out_fd", "NULL pointer")
		}
		fd, err := e.wakeupFD(func(s core.Signal) { e.client.SetSignal(s) })
		if err != nil {
			return err
		}
		return store("out_fd", outFd, fd)
	})
}

// sws_set_callback registers fn (an sws_notify_fn; NULL removes it), called
// with h and user from an engine thread whenever h's queue becomes
// non-empty. Prefer sws_wakeup_fd or polling: a call into an interpreter
// from a foreign thread is slow.
//
//export sws_set_callback
func sws_set_callback(h int64, fn, user, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		if fn == nil {
			e.client.SetNotify(nil)
			return nil
		}
		e.client.SetNotify(notifier(fn, user, h))
		return nil
	})
}

// sws_set_backoff changes the reconnect policy of a live handle from JSON
// {min, max, factor, jitter, max_attempts}; it applies from the next
// attempt. INVALID_ARGUMENT if the handle was opened with reconnect off.
//
//export sws_set_backoff
func sws_set_backoff(h int64, config unsafe.Pointer, configLen int64, errp unsafe.Pointer) int32 {
	return withClient(h, errp, func(e *entry) error {
		raw, err := buffer("config", config, configLen)
		if err != nil {
			return err
		}
		b, err := core.ParseBackoff(raw)
		if err != nil {
			return err
		}
		return e.client.SetBackoff(b)
	})
}
