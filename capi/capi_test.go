package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/steadyws/steadyws/core"
	"github.com/steadyws/steadyws/core/wstest"
)

// TestMain fails if a test leaves a handle in the table or a goroutine
// running: freeing a handle must release everything.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if n := liveHandles(); n != 0 {
			fmt.Fprintf(os.Stderr, "%d handles left in the table\n", n)
			code = 1
		}
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			fmt.Fprintf(os.Stderr, "leaked goroutines: %d > %d\n", n, base)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	codeOK       = int32(core.CodeOK)
	codeInvalid  = int32(core.CodeInvalidArgument)
	codeBad      = int32(core.CodeBadHandle)
	codeTooSmall = int32(core.CodeBufferTooSmall)
)

func ptr[T any](v *T) unsafe.Pointer { return unsafe.Pointer(v) }

// connectTo opens a handle through sws_connect and frees it after the test.
func connectTo(t *testing.T, url string) int64 {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"url": url, "open_timeout": 5, "subprotocols": []string{"json"}})
	var h int64
	errBuf := make([]byte, 256)
	if rc := sws_connect(unsafe.Pointer(&cfg[0]), int64(len(cfg)), ptr(&h), unsafe.Pointer(&errBuf[0]), 256); rc != codeOK {
		t.Fatalf("connect: %d %s", rc, errBuf)
	}
	t.Cleanup(func() { sws_free(h) })
	return h
}

// freedHandle is a handle that existed and was freed.
func freedHandle(t *testing.T) int64 {
	h := connectTo(t, "ws://127.0.0.1:1/")
	if rc := sws_free(h); rc != codeOK {
		t.Fatalf("free: %d", rc)
	}
	return h
}

func lastError(h int64) string {
	buf := make([]byte, 512)
	var n int64
	sws_last_error(h, unsafe.Pointer(&buf[0]), int64(len(buf)), ptr(&n))
	return string(buf[:min(n, 511)])
}

// handleCalls calls every export that takes a handle, with valid buffers.
func handleCalls(h int64) map[string]int32 {
	buf := make([]byte, 256)
	meta := make([]uint32, 4*core.MetaWords)
	stats := make([]int64, 32)
	var i32 int32
	var i64 int64
	p := unsafe.Pointer(&buf[0])
	return map[string]int32{
		"send":         sws_send(h, p, 1, 0),
		"send_batch":   sws_send_batch(h, p, 1, ptr(&meta[0]), 1),
		"poll":         sws_poll(h, ptr(&meta[0]), 4, p, 256, 0, ptr(&i32), ptr(&i64)),
		"close":        sws_close(h, 1000, nil, 0),
		"wait":         sws_wait(h, 0),
		"state":        sws_state(h, ptr(&i32)),
		"stats":        sws_stats(h, ptr(&stats[0]), 32, ptr(&i32)),
		"last_error":   sws_last_error(h, p, 256, ptr(&i64)),
		"wakeup_fd":    sws_wakeup_fd(h, ptr(&i32)),
		"set_callback": sws_set_callback(h, nil, nil),
		"set_backoff":  sws_set_backoff(h, p, 2),
		"set_header":   sws_set_header_provider(h, nil, nil),
		"free":         sws_free(h),
	}
}

func TestGarbageAndFreedHandles(t *testing.T) {
	for _, h := range []int64{-1, 1 << 62, -1 << 63, 987654321, freedHandle(t)} {
		for name, rc := range handleCalls(h) {
			if rc != codeBad {
				t.Errorf("%s(%d) = %d, want BAD_HANDLE", name, h, rc)
			}
		}
	}
	if msg := lastError(0); !strings.Contains(msg, "handle") {
		t.Errorf("last error %q does not mention the handle", msg)
	}
}

func TestNullPointers(t *testing.T) {
	h := connectTo(t, "ws://127.0.0.1:1/")
	var i32 int32
	var i64 int64
	meta := make([]uint32, core.MetaWords)
	cfg := []byte(`{"url": "ws://127.0.0.1:1/"}`)
	for name, rc := range map[string]int32{
		"connect config":    sws_connect(nil, 10, ptr(&i64), nil, 0),
		"connect out":       sws_connect(unsafe.Pointer(&cfg[0]), int64(len(cfg)), nil, nil, 0),
		"send data":         sws_send(h, nil, 5, 1),
		"send_batch meta":   sws_send_batch(h, unsafe.Pointer(&cfg[0]), 3, nil, 1),
		"poll meta":         sws_poll(h, nil, 1, nil, 0, 0, ptr(&i32), ptr(&i64)),
		"poll out_count":    sws_poll(h, ptr(&meta[0]), 1, nil, 0, 0, nil, ptr(&i64)),
		"poll data":         sws_poll(h, ptr(&meta[0]), 1, nil, 10, 0, ptr(&i32), ptr(&i64)),
		"close reason":      sws_close(h, 1000, nil, 3),
		"state out":         sws_state(h, nil),
		"stats out_n":       sws_stats(h, nil, 0, nil),
		"stats out":         sws_stats(h, nil, 4, ptr(&i32)),
		"runtime_stats out": sws_runtime_stats(nil, 2, ptr(&i32)),
		"stat_name buf":     sws_stat_name(0, nil, 10, nil),
		"code_name buf":     sws_code_name(0, nil, 10, nil),
		"last_error buf":    sws_last_error(h, nil, 10, nil),
		"wakeup_fd out":     sws_wakeup_fd(h, nil),
		"set_backoff json":  sws_set_backoff(h, nil, 5),
	} {
		if rc != codeInvalid {
			t.Errorf("%s: got %d, want INVALID_ARGUMENT", name, rc)
		}
	}
}

func TestBadArguments(t *testing.T) {
	h := connectTo(t, "ws://127.0.0.1:1/")
	var i32 int32
	var i64 int64
	meta := make([]uint32, core.MetaWords)
	errBuf := make([]byte, 256)
	backoffJSON := []byte(`{"min": 1, "max": 2}`) // h was opened with reconnect off
	for _, tc := range []struct {
		config, wantInMessage string
	}{
		{config: `not json`, wantInMessage: "config"},
		{config: `{"url": "http://x/"}`, wantInMessage: "url"},
		{config: `{"url": "ws://x/", "open_timeout": -1}`, wantInMessage: "open_timeout"},
		{config: `{"url": "ws://x/", "max_queue": -3}`, wantInMessage: "max_queue"},
		{config: `{"url": "ws://x/", "no_such_option": 1}`, wantInMessage: "no_such_option"},
		{config: `{"url": "ws://x/", "reconnect": {"min": -1}}`, wantInMessage: "reconnect"},
		{config: `{"url": "ws://x/", "reconnect": {"min": 2, "max": 1}}`, wantInMessage: "reconnect"},
		{config: `{"url": "ws://x/", "ping_interval": -1}`, wantInMessage: "ping_interval"},
		{config: `{"url": "ws://x/", "overflow": "drop_all"}`, wantInMessage: "overflow"},
		{config: `{"url": "ws://x/", "max_queue_bytes": -1}`, wantInMessage: "max_queue_bytes"},
	} {
		cfg := []byte(tc.config)
		rc := sws_connect(unsafe.Pointer(&cfg[0]), int64(len(cfg)), ptr(&i64), unsafe.Pointer(&errBuf[0]), 256)
		msg := string(errBuf[:strings.IndexByte(string(errBuf), 0)])
		if rc != codeInvalid || !strings.Contains(msg, tc.wantInMessage) {
			t.Errorf("%s: rc %d message %q", tc.config, rc, msg)
		}
	}
	for name, rc := range map[string]int32{
		"poll max_events":   sws_poll(h, ptr(&meta[0]), 0, nil, 0, 0, ptr(&i32), ptr(&i64)),
		"poll timeout":      sws_poll(h, ptr(&meta[0]), 1, nil, 0, -5, ptr(&i32), ptr(&i64)),
		"send negative len": sws_send(h, unsafe.Pointer(&meta[0]), -1, 0),
		"close code":        sws_close(h, 1005, nil, 0),
		"wait timeout":      sws_wait(h, -1),
		"stat_name index":   sws_stat_name(int32(core.NumStats), unsafe.Pointer(&errBuf[0]), 10, nil),
		"code_name code":    sws_code_name(-1, unsafe.Pointer(&errBuf[0]), 10, nil),
		"set_backoff off":   sws_set_backoff(h, unsafe.Pointer(&backoffJSON[0]), int64(len(backoffJSON))),
	} {
		if rc != codeInvalid {
			t.Errorf("%s: got %d, want INVALID_ARGUMENT", name, rc)
		}
	}
}

// pollOne polls until one event arrives, with a data buffer of dataCap.
func pollOne(t *testing.T, h int64, dataCap int64) (int32, []uint32, []byte, int64) {
	t.Helper()
	meta := make([]uint32, core.MetaWords)
	data := make([]byte, max(dataCap, 1))
	var n int32
	var size int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		rc := sws_poll(h, ptr(&meta[0]), 1, unsafe.Pointer(&data[0]), dataCap, 100, ptr(&n), ptr(&size))
		if rc != codeOK || n == 1 {
			return rc, meta, data[:min(size, int64(len(data)))], size
		}
	}
	t.Fatal("no event")
	return 0, nil, nil, 0
}

func TestTooSmallBuffers(t *testing.T) {
	srv := wstest.New(t, func(c net.Conn) {
		_ = wsutil.WriteServerMessage(c, ws.OpText, []byte("a message of 28 bytes.......")) //nolint:errcheck
		wstest.Echo(c)
	})
	h := connectTo(t, srv.URL)
	if rc, meta, data, _ := pollOne(t, h, 64); rc != codeOK || core.EventKind(meta[0]) != core.EventOpen || string(data) != "json" {
		t.Fatalf("open: rc %d meta %v data %q", rc, meta, data)
	}
	rc, _, _, need := pollOne(t, h, 10)
	if rc != codeTooSmall || need != 28 {
		t.Fatalf("small data buffer: rc %d need %d", rc, need)
	}
	if rc, meta, data, _ := pollOne(t, h, need); rc != codeOK || meta[1] != 28 || !strings.HasPrefix(string(data), "a message") {
		t.Fatalf("retry: rc %d meta %v", rc, meta)
	}

	var n int32
	var size int64
	one := make([]int64, 1)
	if rc := sws_stats(h, ptr(&one[0]), 1, ptr(&n)); rc != codeTooSmall || n != int32(core.NumStats) {
		t.Errorf("stats: rc %d n %d", rc, n)
	}
	buf := make([]byte, 4)
	if rc := sws_stat_name(0, unsafe.Pointer(&buf[0]), 4, ptr(&size)); rc != codeTooSmall || string(buf[:3]) != "mes" || buf[3] != 0 {
		t.Errorf("stat_name: rc %d buf %q", rc, buf)
	}
	sws_close(h, 9999, nil, 0) // records an error on h
	if rc := sws_last_error(h, unsafe.Pointer(&buf[0]), 4, ptr(&size)); rc != codeTooSmall || size <= 4 {
		t.Errorf("last_error: rc %d size %d", rc, size)
	}
	if !strings.Contains(lastError(h), "9999") {
		t.Errorf("last error %q, want the bad code", lastError(h))
	}
}

func TestLifecycleThroughTheExports(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	h := connectTo(t, srv.URL)
	if rc, meta, _, _ := pollOne(t, h, 64); rc != codeOK || core.EventKind(meta[0]) != core.EventOpen {
		t.Fatalf("open: %d %v", rc, meta)
	}
	var fd, state int32
	if rc := sws_wakeup_fd(h, ptr(&fd)); rc != codeOK || fd <= 2 {
		t.Fatalf("wakeup fd: rc %d fd %d", rc, fd)
	}
	msg := []byte("ping me")
	if rc := sws_send(h, unsafe.Pointer(&msg[0]), int64(len(msg)), 1); rc != codeOK {
		t.Fatalf("send: %d", rc)
	}
	if rc, meta, data, _ := pollOne(t, h, 64); rc != codeOK || core.EventKind(meta[0]) != core.EventText || string(data) != "ping me" || meta[2] != 7 {
		t.Fatalf("echo: rc %d meta %v data %q", rc, meta, data)
	}
	reason := []byte("done")
	if rc := sws_close(h, 1000, unsafe.Pointer(&reason[0]), 4); rc != codeOK {
		t.Fatalf("close: %d", rc)
	}
	if rc := sws_wait(h, 5000); rc != codeOK {
		t.Fatalf("wait: %d", rc)
	}
	if rc := sws_state(h, ptr(&state)); rc != codeOK || core.State(state) != core.StateClosed {
		t.Fatalf("state: rc %d %d", rc, state)
	}
	rc, meta, _, _ := pollOne(t, h, 64)
	if rc != codeOK || core.EventKind(meta[0]) != core.EventClosed || meta[2]&0xffff != 1000 {
		t.Fatalf("closed event: rc %d meta %v", rc, meta)
	}
	if rc, _, _, _ := pollOne(t, h, 64); rc != int32(core.CodeClosed) {
		t.Fatalf("poll after the end: %d", rc)
	}
	if rc := sws_free(h); rc != codeOK {
		t.Fatalf("free: %d", rc)
	}
	if rc := sws_free(h); rc != codeBad {
		t.Fatalf("second free: %d", rc)
	}
}

func TestGuardRecoversPanics(t *testing.T) {
	if rc := guard(0, func() error { panic("boom") }); rc != int32(core.CodeInternal) {
		t.Fatalf("rc %d", rc)
	}
	if msg := lastError(0); !strings.Contains(msg, "boom") {
		t.Fatalf("last error %q", msg)
	}
}

func TestNamesMatchTheEnums(t *testing.T) {
	buf := make([]byte, 64)
	var n int64
	for code := 0; code < core.NumCodes; code++ {
		if rc := sws_code_name(int32(code), unsafe.Pointer(&buf[0]), 64, ptr(&n)); rc != codeOK || string(buf[:n]) != core.Code(code).String() {
			t.Errorf("code %d: rc %d name %q", code, rc, buf[:n])
		}
	}
	if sws_abi_version() != abiVersion {
		t.Fatal("abi version")
	}
}

func TestSplitBatch(t *testing.T) {
	data := []byte("abcdef")
	for _, tc := range []struct {
		name  string
		words []uint32
		count int32
		ok    bool
	}{
		{name: "exact", words: []uint32{2, 1, 4, 0}, count: 2, ok: true},
		{name: "past the end", words: []uint32{2, 1, 5, 0}, count: 2},
		{name: "short of the end", words: []uint32{2, 1, 3, 0}, count: 2},
		{name: "no messages", words: []uint32{0, 0}, count: 0},
	} {
		msgs, text, err := splitBatch(unsafe.Pointer(&data[0]), int64(len(data)), unsafe.Pointer(&tc.words[0]), tc.count)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.ok && (string(msgs[0]) != "ab" || string(msgs[1]) != "cdef" || !text[0] || text[1]) {
			t.Errorf("%s: %q %v", tc.name, msgs, text)
		}
	}
}
