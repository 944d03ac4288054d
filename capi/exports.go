package main

/*
#include <stdint.h>

// steadyws C API.
//
// Conventions
// - Every function returns an int32_t error code (enum sws_code); 0 is OK.
// - Handles are int64_t values from sws_connect. An unknown, freed or
//   garbage handle returns SWS_ERR_BAD_HANDLE; nothing is ever a pointer.
// - Results are copied into buffers the caller owns; the library keeps no
//   pointer to them after the call returns.
// - After a failure, sws_last_error copies the message.
// - Every function is safe to call from any thread, concurrently.
// - No function blocks longer than the timeout it is given.
// - Do not call into the library in a child process after fork().

enum sws_code {
	SWS_OK = 0,
	SWS_ERR_INVALID_ARGUMENT = 1,  // bad parameter; the message names it
	SWS_ERR_BAD_HANDLE = 2,        // unknown, freed or garbage handle
	SWS_ERR_TIMEOUT = 3,           // open, write or close deadline passed
	SWS_ERR_CLOSED = 4,            // the connection is closed
	SWS_ERR_NOT_CONNECTED = 5,     // not open yet
	SWS_ERR_HANDSHAKE = 6,         // HTTP upgrade failed (status in the CLOSED event)
	SWS_ERR_TLS = 7,               // TLS handshake or certificate verification failed
	SWS_ERR_DNS = 8,               // host name not resolved
	SWS_ERR_REFUSED = 9,           // TCP connection refused
	SWS_ERR_RESET = 10,            // connection reset by peer / broken pipe
	SWS_ERR_PROTOCOL = 11,         // peer broke RFC 6455 (we closed with 1002/1007)
	SWS_ERR_MESSAGE_TOO_BIG = 12,  // message over max_message_size (closed with 1009)
	SWS_ERR_QUEUE_FULL = 13,       // inbound queue overflow
	SWS_ERR_BUFFER_TOO_SMALL = 14, // a caller buffer is too small; retry bigger
	SWS_ERR_INTERNAL = 15,         // recovered panic or engine bug
	SWS_ERR_NETWORK = 16,          // any other network failure
	SWS_ERR_PROXY = 17,            // the proxy refused or failed
};

// Connection states (sws_state).
enum sws_state {
	SWS_STATE_CONNECTING = 0,
	SWS_STATE_OPEN = 1,
	SWS_STATE_RECONNECTING = 2,
	SWS_STATE_CLOSING = 3,
	SWS_STATE_CLOSED = 4,
};

// Event kinds in a polled batch. Each event is described by SWS_META_WORDS
// uint32_t words: kind, data length, a, b; its data follows the previous
// event's in the data buffer.
//   SWS_EVENT_TEXT:   UTF-8 message; a = length in code points
//   SWS_EVENT_BINARY: binary message
//   SWS_EVENT_OPEN:   connection open; data = chosen subprotocol (may be empty)
//   SWS_EVENT_CLOSED: terminal; data = close reason, or the error message;
//                     a = close code | HTTP status << 16;
//                     b = sws_code | 1 << 16 if it failed while connecting
//   SWS_EVENT_DISCONNECTED: an open connection was lost; fields as CLOSED;
//                     a RECONNECTING or the CLOSED event follows
//   SWS_EVENT_RECONNECTING: a = attempt number, b = delay in ms before it;
//                     data = why the last connection or attempt failed
//   SWS_EVENT_WARNING: the queue is in trouble (rate-limited); a = 1 drops
//                     (b = drops since the last warning) or 2 high water
//                     (b = depth); data = a message
enum sws_event_kind {
	SWS_EVENT_TEXT = 1,
	SWS_EVENT_BINARY = 2,
	SWS_EVENT_OPEN = 3,
	SWS_EVENT_CLOSED = 4,
	SWS_EVENT_DISCONNECTED = 5,
	SWS_EVENT_RECONNECTING = 6,
	SWS_EVENT_WARNING = 7,
};
#define SWS_META_WORDS 4

// Called from an engine thread when a handle's queue becomes non-empty.
// It must return quickly; it may call sws_poll with timeout 0.
typedef void (*sws_notify_fn)(int64_t handle, void *user);

// Called from an engine thread before every reconnect attempt: write a JSON
// array of [name, value] pairs into buf (cap bytes), store its length in
// *out_len and return 0; return SWS_ERR_BUFFER_TOO_SMALL with the length
// needed to get a bigger buffer; any other code fails the attempt.
typedef int32_t (*sws_header_fn)(int64_t handle, void *user, char *buf, int64_t cap, int64_t *out_len);
*/
import "C"

import (
	"errors"
	"runtime"
	"time"
	"unsafe"

	"github.com/steadyws/steadyws/core"
)

// abiVersion changes when a signature or a layout changes.
const abiVersion = 1

// freeWait bounds how long sws_free waits for a connection's goroutines.
const freeWait = 2 * time.Second

// sws_abi_version returns the ABI version of this library (not an error code).
//
//export sws_abi_version
func sws_abi_version() int32 { return abiVersion }

// sws_connect validates a JSON config (keys: url, headers [[name, value]...],
// subprotocols, open_timeout, close_timeout, write_timeout, ping_interval,
// ping_timeout, healthy_after (seconds; null = no limit or off),
// max_message_size, max_queue, max_queue_bytes, overflow ("block",
// "drop_oldest", "drop_newest", "close"), max_handshake_size, ca_file, cert_file,
// key_file, server_hostname, insecure_skip_verify, reconnect (null or
// {min, max, factor, jitter, max_attempts}), fatal_statuses), stores a new
// handle in *out_handle and starts connecting in the background. It does no
// I/O itself: the outcome is an OPEN or a CLOSED event. On failure the
// message is copied into err_buf (may be NULL when err_cap is 0).
//
//export sws_connect
func sws_connect(config unsafe.Pointer, configLen int64, outHandle unsafe.Pointer, errBuf unsafe.Pointer, errCap int64) int32 {
	var msg string
	code := guard(0, func() error {
		err := connect(config, configLen, outHandle)
		if err != nil {
			msg = err.Error()
		}
		return err
	})
	if code != 0 && errCap > 0 && errBuf != nil {
		_ = copyString(errBuf, errCap, msg, nil)
	}
	return code
}

func connect(config unsafe.Pointer, configLen int64, outHandle unsafe.Pointer) error {
	if outHandle == nil {
		return invalid("out_handle", "NULL pointer")
	}
	raw, err := buffer("config", config, configLen)
	if err != nil {
		return err
	}
	opts, err := parseConfig(raw)
	if err != nil {
		return err
	}
	c, err := core.Open(opts)
	if err != nil {
		return err
	}
	return store("out_handle", outHandle, register(&entry{client: c}))
}

// sws_send writes one message: a text frame if text != 0 (data must be
// UTF-8), else binary. Returns SWS_ERR_NOT_CONNECTED before the connection
// is open and SWS_ERR_CLOSED after it ended; data is never queued for later.
//
//export sws_send
func sws_send(h int64, data unsafe.Pointer, n int64, text int32) int32 {
	return withHandle(h, func(e *entry) error {
		p, err := buffer("data", data, n)
		if err != nil {
			return err
		}
		return e.client.Send(p, text != 0)
	})
}

// sws_send_batch writes n messages in one call: their payloads back to back
// in data (len bytes), described by 2 uint32 words each in meta: length,
// text flag. They are written under one lock, in as few socket writes as
// possible; nothing is written if any message is invalid.
//
//export sws_send_batch
func sws_send_batch(h int64, data unsafe.Pointer, n int64, meta unsafe.Pointer, count int32) int32 {
	return withHandle(h, func(e *entry) error {
		msgs, text, err := splitBatch(data, n, meta, count)
		if err != nil {
			return err
		}
		return e.client.SendBatch(msgs, text)
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

// sws_poll waits up to timeout_ms for events and copies up to max_events of
// them into meta (SWS_META_WORDS words each) and data (data_cap bytes).
// *out_count gets the number of events, *out_len the data bytes used.
// Returns SWS_ERR_BUFFER_TOO_SMALL with *out_len = bytes needed when the
// next event does not fit (it stays queued), and SWS_ERR_CLOSED once the
// CLOSED event has been delivered.
//
//export sws_poll
func sws_poll(h int64, meta unsafe.Pointer, maxEvents int32, data unsafe.Pointer, dataCap int64, timeoutMs int32, outCount unsafe.Pointer, outLen unsafe.Pointer) int32 {
	return withHandle(h, func(e *entry) error {
		return e.poll(meta, maxEvents, data, dataCap, timeoutMs, outCount, outLen)
	})
}

func (e *entry) poll(meta unsafe.Pointer, maxEvents int32, data unsafe.Pointer, dataCap int64, timeoutMs int32, outCount, outLen unsafe.Pointer) error {
	switch {
	case outCount == nil || outLen == nil:
		return invalid("out_count", "NULL pointer")
	case maxEvents <= 0 || meta == nil:
		return invalid("max_events", "need a meta buffer for at least one event")
	case timeoutMs < 0:
		return invalid("timeout_ms", "must not be negative")
	}
	dst, err := buffer("data", data, dataCap)
	if err != nil {
		return err
	}
	words := unsafe.Slice((*uint32)(meta), int(maxEvents)*core.MetaWords)
	e.pollMu.Lock()
	defer e.pollMu.Unlock()
	if cap(e.scratch) < int(maxEvents) {
		e.scratch = make([]core.Event, maxEvents)
	}
	events := e.scratch[:maxEvents]
	n, need, err := e.client.Poll(events, len(dst), time.Duration(timeoutMs)*time.Millisecond)
	*(*int32)(outCount), *(*int64)(outLen) = 0, int64(need)
	if err != nil {
		return err
	}
	count, size := core.EncodeEvents(events[:n], words, dst)
	e.noteClosed(events[:n])
	clear(events[:n]) // drop references to delivered data
	*(*int32)(outCount), *(*int64)(outLen) = int32(count), int64(size)
	return nil
}

// noteClosed keeps the failure of a delivered CLOSED event for sws_last_error.
func (e *entry) noteClosed(events []core.Event) {
	for i := range events {
		if events[i].Kind == core.EventClosed && events[i].Err != core.CodeOK {
			if err := e.client.Err(); err != nil {
				e.setLastError(err.Error())
			}
		}
	}
}

// sws_close starts the close handshake with code (1000-1003, 1007-1014,
// 3000-4999) and a UTF-8 reason of at most 123 bytes, and returns at once.
// Idempotent. Use sws_wait to wait for the end.
//
//export sws_close
func sws_close(h int64, code int32, reason unsafe.Pointer, reasonLen int64) int32 {
	return withHandle(h, func(e *entry) error {
		r, err := buffer("reason", reason, reasonLen)
		if err != nil {
			return err
		}
		return e.client.Close(int(code), string(r))
	})
}

// sws_wait waits up to timeout_ms for the connection to end completely
// (close handshake over, socket closed, goroutines gone). Returns OK when
// it has, SWS_ERR_TIMEOUT when not yet.
//
//export sws_wait
func sws_wait(h int64, timeoutMs int32) int32 {
	return withHandle(h, func(e *entry) error {
		if timeoutMs < 0 {
			return invalid("timeout_ms", "must not be negative")
		}
		t := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
		defer t.Stop()
		select {
		case <-e.client.Done():
			return nil
		case <-t.C:
			return &core.Error{Code: core.CodeTimeout, Op: "wait", Err: errTimeout}
		}
	})
}

// sws_free releases a handle: if the connection still runs it is aborted
// without a close handshake, its goroutines are awaited and its wakeup fd is
// closed. The handle is invalid afterwards. Returns SWS_ERR_TIMEOUT if the
// goroutines did not end within 2 s: then keep any callback you registered
// alive, it may still be called.
//
//export sws_free
func sws_free(h int64) int32 {
	return guard(h, func() error {
		e, err := unregister(h)
		if err != nil {
			return err
		}
		if e.server != nil {
			return stopServer(e.server)
		}
		e.client.SetHeaderFunc(nil)
		e.client.SetNotify(nil)
		stopped := e.client.Abort(freeWait)
		e.client.SetSignal(nil)
		if e.wakeup != nil {
			_ = e.wakeup.Close()
		}
		if !stopped {
			return &core.Error{Code: core.CodeTimeout, Op: "free", Err: errors.New("goroutines still running")}
		}
		return nil
	})
}

// sws_state stores the connection state (enum sws_state) in *out.
//
//export sws_state
func sws_state(h int64, out unsafe.Pointer) int32 {
	return withHandle(h, func(e *entry) error {
		return store("out", out, int32(e.client.State()))
	})
}

// sws_stats copies up to cap int64 counters into out (names from
// sws_stat_name) and stores the number of counters the library has in *out_n.
//
//export sws_stats
func sws_stats(h int64, out unsafe.Pointer, cap int32, outN unsafe.Pointer) int32 {
	return withHandle(h, func(e *entry) error {
		s := e.client.Stats()
		return copyInt64s(out, cap, s[:], outN)
	})
}

// sws_runtime_stats copies process-wide counters: goroutines, live handles.
//
//export sws_runtime_stats
func sws_runtime_stats(out unsafe.Pointer, cap int32, outN unsafe.Pointer) int32 {
	return guard(0, func() error {
		return copyInt64s(out, cap, []int64{int64(runtime.NumGoroutine()), int64(liveHandles())}, outN)
	})
}

func copyInt64s(out unsafe.Pointer, cap int32, v []int64, outN unsafe.Pointer) error {
	if err := store("out_n", outN, int32(len(v))); err != nil {
		return err
	}
	if cap < 0 || (cap > 0 && out == nil) {
		return invalid("out", "NULL pointer or negative capacity")
	}
	n := copy(unsafe.Slice((*int64)(out), cap), v)
	if n < len(v) {
		return tooSmall()
	}
	return nil
}

// sws_stat_name copies the name of counter i (0 <= i < count) into buf.
//
//export sws_stat_name
func sws_stat_name(i int32, buf unsafe.Pointer, cap int64, outLen unsafe.Pointer) int32 {
	return guard(0, func() error {
		if i < 0 || int(i) >= len(core.StatNames) {
			return invalid("index", "no such counter")
		}
		return copyString(buf, cap, core.StatNames[i], outLen)
	})
}

// sws_code_name copies the name of an error code (e.g. "TIMEOUT") into buf.
//
//export sws_code_name
func sws_code_name(code int32, buf unsafe.Pointer, cap int64, outLen unsafe.Pointer) int32 {
	return guard(0, func() error {
		if code < 0 || int(code) >= core.NumCodes {
			return invalid("code", "no such code")
		}
		return copyString(buf, cap, core.Code(code).String(), outLen)
	})
}

// sws_last_error copies the message of the last failed call on h (h = 0:
// the last failure that had no valid handle) into buf, NUL-terminated, and
// stores its full length in *out_len (may be NULL).
//
//export sws_last_error
func sws_last_error(h int64, buf unsafe.Pointer, cap int64, outLen unsafe.Pointer) int32 {
	msg, err := lastErrorOf(h)
	if err != nil {
		return int32(core.CodeOf(err))
	}
	// Not through guard: reading the last error must not replace it.
	return int32(core.CodeOf(recovered(func() error { return copyString(buf, cap, msg, outLen) })))
}

func lastErrorOf(h int64) (string, error) {
	if h == 0 {
		globalErr.Lock()
		defer globalErr.Unlock()
		return globalErr.msg, nil
	}
	e, err := lookup(h)
	if err != nil {
		return "", err
	}
	return e.lastError(), nil
}

// sws_wakeup_fd stores in *out_fd an eventfd that is readable exactly while
// events are waiting on h, for event loops. The library owns it and closes
// it in sws_free; do not read from or close it.
//
//export sws_wakeup_fd
func sws_wakeup_fd(h int64, outFd unsafe.Pointer) int32 {
	return withHandle(h, func(e *entry) error {
		if outFd == nil {
			return invalid("out_fd", "NULL pointer")
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.wakeup == nil {
			fd, err := newEventFD()
			if err != nil {
				return err
			}
			e.wakeup = fd
			e.client.SetSignal(fd)
		}
		return store("out_fd", outFd, int32(e.wakeup.fd))
	})
}

// sws_set_callback registers fn (an sws_notify_fn; NULL removes it), called
// with h and user from an engine thread whenever h's queue becomes
// non-empty. Prefer sws_wakeup_fd or polling: a call into an interpreter
// from a foreign thread is slow.
//
//export sws_set_callback
func sws_set_callback(h int64, fn unsafe.Pointer, user unsafe.Pointer) int32 {
	return withHandle(h, func(e *entry) error {
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
func sws_set_backoff(h int64, config unsafe.Pointer, configLen int64) int32 {
	return withHandle(h, func(e *entry) error {
		raw, err := buffer("config", config, configLen)
		if err != nil {
			return err
		}
		b, err := parseBackoff(raw)
		if err != nil {
			return err
		}
		return e.client.SetBackoff(b)
	})
}

// sws_set_header_provider registers fn (an sws_header_fn; NULL removes it),
// called before every reconnect attempt for fresh handshake headers.
//
//export sws_set_header_provider
func sws_set_header_provider(h int64, fn unsafe.Pointer, user unsafe.Pointer) int32 {
	return withHandle(h, func(e *entry) error {
		if fn == nil {
			e.client.SetHeaderFunc(nil)
			return nil
		}
		e.client.SetHeaderFunc(headerProvider(fn, user, h))
		return nil
	})
}
