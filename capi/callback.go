package main

/*
#include <stdint.h>

typedef void (*sws_notify_fn)(int64_t handle, void *user);

typedef int32_t (*sws_header_fn)(int64_t handle, void *user, char *buf, int64_t cap, int64_t *out_len);

// Go cannot call a C function pointer; these trampolines do.
static inline void sws_call_notify(void *fn, int64_t handle, void *user) {
	((sws_notify_fn)fn)(handle, user);
}

static inline int32_t sws_call_header(void *fn, int64_t handle, void *user, char *buf, int64_t cap, int64_t *out_len) {
	return ((sws_header_fn)fn)(handle, user, buf, cap, out_len);
}
*/
import "C"

import (
	"fmt"
	"net/http"
	"unsafe"

	"github.com/steadyws/steadyws/core"
)

// maxHeaderJSON bounds what a header provider may return.
const maxHeaderJSON = 1 << 20

// notifier returns the function the queue calls when events arrive: it
// calls the registered C function with the handle and the user's pointer.
func notifier(fn, user unsafe.Pointer, h int64) func() {
	return func() { C.sws_call_notify(fn, C.int64_t(h), user) }
}

// headerProvider returns the function core calls before each reconnect: it
// calls the registered C function for a JSON array of [name, value] pairs,
// growing the buffer when the function asks for more.
func headerProvider(fn, user unsafe.Pointer, h int64) func() (http.Header, error) {
	return func() (http.Header, error) {
		for size := int64(4096); size <= maxHeaderJSON; {
			buf := make([]byte, size)
			var n C.int64_t
			rc := C.sws_call_header(fn, C.int64_t(h), user, (*C.char)(unsafe.Pointer(&buf[0])), C.int64_t(size), &n)
			switch {
			case core.Code(rc) == core.CodeBufferTooSmall && int64(n) > size:
				size = int64(n)
			case rc != 0:
				return nil, fmt.Errorf("header provider failed with code %d", int32(rc))
			case int64(n) < 0 || int64(n) > size:
				return nil, fmt.Errorf("header provider returned length %d", int64(n))
			default:
				return parseHeaders(buf[:n])
			}
		}
		return nil, fmt.Errorf("header provider needs more than %d bytes", maxHeaderJSON)
	}
}
