package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
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
	codeType     = int32(core.CodeType)
	codeBad      = int32(core.CodeBadHandle)
	codeTooSmall = int32(core.CodeBufferTooSmall)
)

func ptr[T any](v *T) unsafe.Pointer { return unsafe.Pointer(v) }

func cbytes(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// connectJSON calls sws_connect with cfg (observed by hub, if not 0) and
// frees the handle after the test.
func connectJSON(t *testing.T, cfg []byte, hub int64) (int64, int32) {
	t.Helper()
	var h int64
	var member, consumer int32
	var e cError
	if rc := sws_connect(cbytes(cfg), int64(len(cfg)), hub, 0, ptr(&h), ptr(&member), ptr(&consumer), errPtr(&e)); rc != codeOK {
		t.Fatalf("connect: %d %s", rc, errText(&e))
	}
	t.Cleanup(func() { sws_free(h, nil) })
	return h, member
}

// connectTo opens a handle to url through sws_connect.
func connectTo(t *testing.T, url string) int64 {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"url": url, "open_timeout": 5, "subprotocols": []string{"json"}, "reconnect": false})
	h, _ := connectJSON(t, cfg, 0)
	return h
}

// freedHandle is a handle that existed and was freed.
func freedHandle(t *testing.T) int64 {
	h := connectTo(t, "ws://127.0.0.1:1/")
	if rc := sws_free(h, nil); rc != codeOK {
		t.Fatalf("free: %d", rc)
	}
	return h
}

// handleCalls calls every export that takes a client handle, with valid buffers.
func handleCalls(h int64, e *cError) map[string]int32 {
	buf := make([]byte, 256)
	meta := make([]uint32, 4*core.MetaWords)
	stats := make([]int64, 32)
	var i32 int32
	var i64 int64
	p, ep := unsafe.Pointer(&buf[0]), errPtr(e)
	return map[string]int32{
		"send":            sws_send(h, p, 1, 0, 0, ep),
		"send_batch":      sws_send_batch(h, p, 1, ptr(&meta[0]), 1, 0, 0, ep),
		"poll":            sws_poll(h, ptr(&meta[0]), 4, p, 256, 0, 0, ptr(&i32), ptr(&i64), nil, ep),
		"close":           sws_close(h, 1000, nil, 0, ep),
		"wait":            sws_wait(h, 0, ep),
		"ready":           sws_ready(h, 1, ep),
		"provide_headers": sws_provide_headers(h, 1, p, 2, nil, 0, ep),
		"state":           sws_state(h, ptr(&i32), ep),
		"stats":           sws_stats(h, ptr(&stats[0]), 32, ptr(&i32), ep),
		"wakeup_fd":       sws_wakeup_fd(h, ptr(&i32), ep),
		"set_callback":    sws_set_callback(h, nil, nil, ep),
		"set_backoff":     sws_set_backoff(h, p, 2, ep),
		"free":            sws_free(h, ep),
	}
}

func TestGarbageAndFreedHandles(t *testing.T) {
	var e cError
	for _, h := range []int64{-1, 1 << 62, -1 << 63, 987654321, freedHandle(t)} {
		for name, rc := range handleCalls(h, &e) {
			if rc != codeBad || !strings.Contains(errText(&e), "handle") {
				t.Errorf("%s(%d) = %d %q, want BAD_HANDLE", name, h, rc, errText(&e))
			}
		}
	}
}

// TestHandlesOfTheWrongKind: a hub or test server handle is refused by the
// client exports, and the other way round.
func TestHandlesOfTheWrongKind(t *testing.T) {
	var hub int64
	if rc := sws_hub_new(ptr(&hub), nil); rc != codeOK {
		t.Fatal(rc)
	}
	defer sws_free(hub, nil)
	var e cError
	if rc := sws_send(hub, nil, 0, 0, 0, errPtr(&e)); rc != codeBad || !strings.Contains(errText(&e), "a hub, not a connection") {
		t.Fatalf("send on a hub: %d %q", rc, errText(&e))
	}
	h := connectTo(t, "ws://127.0.0.1:1/")
	one := uint32(1)
	if rc := sws_hub_ack(h, ptr(&one), 1, errPtr(&e)); rc != codeBad {
		t.Fatalf("hub_ack on a connection: %d", rc)
	}
}

func TestNullPointers(t *testing.T) {
	h := connectTo(t, "ws://127.0.0.1:1/")
	var i32 int32
	var i64 int64
	meta := make([]uint32, core.MetaWords)
	cfg := []byte(`{"url": "ws://127.0.0.1:1/"}`)
	for name, rc := range map[string]int32{
		"connect config":    sws_connect(nil, 10, 0, 0, ptr(&i64), nil, nil, nil),
		"connect out":       sws_connect(cbytes(cfg), int64(len(cfg)), 0, 0, nil, nil, nil, nil),
		"send data":         sws_send(h, nil, 5, 1, 0, nil),
		"send_batch meta":   sws_send_batch(h, cbytes(cfg), 3, nil, 1, 0, 0, nil),
		"poll meta":         sws_poll(h, nil, 1, nil, 0, 0, 0, ptr(&i32), ptr(&i64), nil, nil),
		"poll out_count":    sws_poll(h, ptr(&meta[0]), 1, nil, 0, 0, 0, nil, ptr(&i64), nil, nil),
		"poll data":         sws_poll(h, ptr(&meta[0]), 1, nil, 10, 0, 0, ptr(&i32), ptr(&i64), nil, nil),
		"close reason":      sws_close(h, 1000, nil, 3, nil),
		"state out":         sws_state(h, nil, nil),
		"stats out_n":       sws_stats(h, nil, 0, nil, nil),
		"stats out":         sws_stats(h, nil, 4, ptr(&i32), nil),
		"runtime_stats out": sws_runtime_stats(nil, 2, ptr(&i32), nil),
		"wakeup_fd out":     sws_wakeup_fd(h, nil, nil),
		"set_backoff json":  sws_set_backoff(h, nil, 5, nil),
		"validate config":   sws_validate(nil, 5, nil),
		"hub_new out":       sws_hub_new(nil, nil),
	} {
		if rc != codeInvalid {
			t.Errorf("%s: got %d, want INVALID_ARGUMENT", name, rc)
		}
	}
}

// TestConfigErrorsNameTheOption: wrong types are SWS_ERR_TYPE, wrong values
// SWS_ERR_INVALID_ARGUMENT, and the message names the option.
func TestConfigErrorsNameTheOption(t *testing.T) {
	for _, tc := range []struct {
		config, want string
		code         int32
	}{
		{`not json`, "config", codeInvalid},
		{`{"url": "http://x/"}`, "url", codeInvalid},
		{`{"url": 5}`, "url", codeType},
		{`{"url": "ws://x/", "open_timeout": -1}`, "open_timeout", codeInvalid},
		{`{"url": "ws://x/", "open_timeout": {"$float": "inf"}}`, "open_timeout", codeInvalid},
		{`{"url": "ws://x/", "open_timeout": "5"}`, "open_timeout", codeType},
		{`{"url": "ws://x/", "max_queue": -3}`, "max_queue", codeInvalid},
		{`{"url": "ws://x/", "max_queue": 3.0}`, "max_queue", codeType},
		{`{"url": "ws://x/", "no_such_option": 1}`, "no_such_option", codeType},
		{`{"url": "ws://x/", "reconnect": {"min": 0.01}}`, "reconnect", codeInvalid},
		{`{"url": "ws://x/", "reconnect": {"min": 2, "max": 1}}`, "reconnect", codeInvalid},
		{`{"url": "ws://x/", "reconnect": {"min": "2"}}`, "reconnect", codeType},
		{`{"url": "ws://x/", "healthy_after": null}`, "healthy_after", codeType},
		{`{"url": "ws://x/", "healthy_after": 0.5}`, "healthy_after", codeInvalid},
		{`{"url": "ws://x/", "insecure_skip_verify": "false"}`, "insecure_skip_verify", codeType},
		{`{"url": "ws://x/", "insecure_skip_verify": 0}`, "insecure_skip_verify", codeType},
		{`{"url": "ws://x/", "subprotocols": 42}`, "subprotocols", codeType},
		{`{"url": "ws://x/", "subprotocols": {"$type": "set"}}`, "not set", codeType},
		{`{"url": "ws://x/", "headers": [["Host", "x"]]}`, "headers", codeInvalid},
		{`{"url": "ws://x/", "headers": [["X-A", "a\u001bb"]]}`, "headers", codeInvalid},
		{`{"url": "ws://x/", "overflow": "drop_all"}`, "overflow", codeInvalid},
	} {
		cfg := []byte(tc.config)
		var h int64
		var e cError
		rc := sws_connect(cbytes(cfg), int64(len(cfg)), 0, 0, ptr(&h), nil, nil, errPtr(&e))
		if rc != tc.code || !strings.Contains(errText(&e), tc.want) || int32(e.code) != rc {
			t.Errorf("%s: rc %d message %q", tc.config, rc, errText(&e))
		}
	}
}

func TestBadArguments(t *testing.T) {
	h := connectTo(t, "ws://127.0.0.1:1/")
	var i32 int32
	var i64 int64
	meta := make([]uint32, core.MetaWords)
	backoffJSON := []byte(`{"min": 1, "max": 2}`) // h was opened with reconnect off
	for name, rc := range map[string]int32{
		"poll max_events":   sws_poll(h, ptr(&meta[0]), 0, nil, 0, 0, 0, ptr(&i32), ptr(&i64), nil, nil),
		"poll timeout":      sws_poll(h, ptr(&meta[0]), 1, nil, 0, -5, 0, ptr(&i32), ptr(&i64), nil, nil),
		"send negative len": sws_send(h, unsafe.Pointer(&meta[0]), -1, 0, 0, nil),
		"close code":        sws_close(h, 1005, nil, 0, nil),
		"check_close code":  sws_check_close(999, nil, 0, nil),
		"wait timeout":      sws_wait(h, -1, nil),
		"set_backoff off":   sws_set_backoff(h, cbytes(backoffJSON), int64(len(backoffJSON)), nil),
		"connect no member": sws_connect(cbytes(backoffJSON), 2, 7, 0, ptr(&i64), nil, nil, nil),
	} {
		if rc != codeInvalid {
			t.Errorf("%s: got %d, want INVALID_ARGUMENT", name, rc)
		}
	}
}

// TestErrorsTravelWithTheirCall: many goroutines failing in different
// ways on one handle at once each get their own message.
func TestErrorsTravelWithTheirCall(t *testing.T) {
	h := connectTo(t, "ws://127.0.0.1:1/")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e cError
			for j := range 500 {
				code := int32(1000 + 1000*(i%4) + j%999 + 5000) // 6000-9998: never valid
				if rc := sws_close(h, code, nil, 0, errPtr(&e)); rc != codeInvalid || !strings.Contains(errText(&e), fmt.Sprint(code)) {
					t.Errorf("close %d: rc %d, message %q", code, rc, errText(&e))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestWaitZeroChecks: sws_wait with timeout 0 on a finished client says
// OK every time (it used to race the expired timer).
func TestWaitZeroChecks(t *testing.T) {
	h := connectTo(t, "ws://127.0.0.1:1/")
	if rc := sws_wait(h, 5000, nil); rc != codeOK {
		t.Fatalf("the refused client did not end: %d", rc)
	}
	for i := range 1000 {
		if rc := sws_wait(h, 0, nil); rc != codeOK {
			t.Fatalf("try %d: %d", i, rc)
		}
	}
}

// TestWakeupFDRacesFree: sws_wakeup_fd and sws_free at once never touch a
// closed fd (the race detector watches).
func TestWakeupFDRacesFree(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	for range 50 {
		cfg, _ := json.Marshal(map[string]any{"url": srv.URL, "reconnect": false})
		var h int64
		if rc := sws_connect(cbytes(cfg), int64(len(cfg)), 0, 0, ptr(&h), nil, nil, nil); rc != codeOK {
			t.Fatal(rc)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			var fd int32
			sws_wakeup_fd(h, ptr(&fd), nil)
		}()
		go func() {
			defer wg.Done()
			sws_free(h, nil)
		}()
		wg.Wait()
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
		rc := sws_poll(h, ptr(&meta[0]), 1, unsafe.Pointer(&data[0]), dataCap, 100, 0, ptr(&n), ptr(&size), nil, nil)
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
	one := make([]int64, 1)
	if rc := sws_stats(h, ptr(&one[0]), 1, ptr(&n), nil); rc != codeTooSmall || n != int32(core.NumStats) {
		t.Errorf("stats: rc %d n %d", rc, n)
	}
}

// TestLongErrorsAreTruncated: the message is cut to fit sws_error.text,
// and text_len says how long it was.
func TestLongErrorsAreTruncated(t *testing.T) {
	var e cError
	rc := guard(errPtr(&e), func() error { return invalid("x", strings.Repeat("long ", 1000)) })
	if rc != codeInvalid || len(errText(&e)) != len(e.text)-1 || int(e.text_len) != len("x: ")+5000 || len(errText(&e)) == 0 {
		t.Fatalf("rc %d, text of %d bytes, text_len %d", rc, len(errText(&e)), e.text_len)
	}
}

func TestLifecycleThroughTheExports(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	h := connectTo(t, srv.URL)
	if rc, meta, _, _ := pollOne(t, h, 64); rc != codeOK || core.EventKind(meta[0]) != core.EventOpen || meta[2] != 1 {
		t.Fatalf("open: %d %v", rc, meta)
	}
	var fd, state int32
	if rc := sws_wakeup_fd(h, ptr(&fd), nil); rc != codeOK || fd <= 2 {
		t.Fatalf("wakeup fd: rc %d fd %d", rc, fd)
	}
	msg := []byte("ping me")
	if rc := sws_send(h, cbytes(msg), int64(len(msg)), int32(core.SendText), 0, nil); rc != codeOK {
		t.Fatalf("send: %d", rc)
	}
	if rc, meta, data, _ := pollOne(t, h, 64); rc != codeOK || core.EventKind(meta[0]) != core.EventText || string(data) != "ping me" || meta[2] != 7 {
		t.Fatalf("echo: rc %d meta %v data %q", rc, meta, data)
	}
	reason := []byte("done")
	if rc := sws_close(h, 1000, cbytes(reason), 4, nil); rc != codeOK {
		t.Fatalf("close: %d", rc)
	}
	if rc := sws_wait(h, 5000, nil); rc != codeOK {
		t.Fatalf("wait: %d", rc)
	}
	if rc := sws_state(h, ptr(&state), nil); rc != codeOK || core.State(state) != core.StateClosed {
		t.Fatalf("state: rc %d %d", rc, state)
	}
	var e cError
	if rc := sws_send(h, cbytes(msg), int64(len(msg)), 0, 0, errPtr(&e)); rc != int32(core.CodeClosed) {
		t.Fatalf("send after the end: %d", rc)
	}
	if code, endCode, _, by, reason := errEnd(&e); code != 1000 || endCode != 0 || by != int32(core.SideClient) || reason != "done" {
		t.Fatalf("the end a send reports: %d %d %d %q", code, endCode, by, reason)
	}
	rc, meta, data, _ := pollOne(t, h, 64)
	if rc != codeOK || core.EventKind(meta[0]) != core.EventClosed || meta[2]&0xffff != 1000 || string(data) != "done" {
		t.Fatalf("closed event: rc %d meta %v data %q", rc, meta, data)
	}
	if rc, _, _, _ := pollOne(t, h, 64); rc != int32(core.CodeClosed) {
		t.Fatalf("poll after the end: %d", rc)
	}
	if rc := sws_free(h, nil); rc != codeOK {
		t.Fatalf("free: %d", rc)
	}
	if rc := sws_free(h, nil); rc != codeBad {
		t.Fatalf("second free: %d", rc)
	}
}

// TestHubThroughTheExports: a connection observed by a hub shows its
// lifecycle there, tagged with its member id, and its wakeup fd is readable
// while the hub has something.
func TestHubThroughTheExports(t *testing.T) {
	srv := wstest.New(t, wstest.Echo)
	var hub int64
	if rc := sws_hub_new(ptr(&hub), nil); rc != codeOK {
		t.Fatal(rc)
	}
	defer sws_free(hub, nil)
	cfg, _ := json.Marshal(map[string]any{"url": srv.URL, "reconnect": false})
	h, member := connectJSON(t, cfg, hub)
	var fd int32
	if rc := sws_hub_wakeup_fd(hub, ptr(&fd), nil); rc != codeOK || fd <= 2 {
		t.Fatalf("hub fd: %d %d", rc, fd)
	}
	meta := make([]uint32, 8*core.MetaWords)
	src := make([]uint32, 8)
	data := make([]byte, 256)
	var n int32
	var size int64
	rc := sws_hub_poll(hub, ptr(&meta[0]), ptr(&src[0]), 8, cbytes(data), 256, 8, 5000, ptr(&n), ptr(&size), nil)
	if rc != codeOK || n != 1 || core.EventKind(meta[0]) != core.EventOpen || int32(src[0]) != member {
		t.Fatalf("hub poll: rc %d n %d meta %v src %v", rc, n, meta[:4], src[:1])
	}
	ids := []uint32{uint32(member)}
	if rc := sws_hub_ack(hub, ptr(&ids[0]), 1, nil); rc != codeOK {
		t.Fatal(rc)
	}
	var e cError
	if rc := sws_hub_ack(hub, nil, 2, errPtr(&e)); rc != codeInvalid || !strings.Contains(errText(&e), "members") {
		t.Fatalf("hub_ack without ids: %d %q", rc, errText(&e))
	}
	sws_close(h, 1000, nil, 0, nil)
	rc = sws_hub_poll(hub, ptr(&meta[0]), ptr(&src[0]), 8, cbytes(data), 256, 8, 5000, ptr(&n), ptr(&size), nil)
	if rc != codeOK || n != 1 || core.EventKind(meta[0]) != core.EventClosed {
		t.Fatalf("hub poll after close: rc %d n %d meta %v", rc, n, meta[:4])
	}
}

func TestGuardRecoversPanics(t *testing.T) {
	var e cError
	if rc := guard(errPtr(&e), func() error { panic("boom") }); rc != int32(core.CodeInternal) || !strings.Contains(errText(&e), "boom") {
		t.Fatalf("rc %d %q", rc, errText(&e))
	}
}

func TestABIVersion(t *testing.T) {
	if sws_abi_version() != core.ABIVersion {
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
