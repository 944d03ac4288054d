package main

/*
#include "sws_abi.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/steadyws/steadyws/core"
)

// guard is the one wrapper every export runs in: a panic becomes
// SWS_ERR_INTERNAL, a failure's message (and, for SWS_ERR_CLOSED, how the
// connection ended) is written into the caller's sws_error, and the result
// is the error's stable code. The error travels with the call that failed:
// there is no shared "last error" for another thread to overwrite.
func guard(errp unsafe.Pointer, f func() error) int32 {
	err := recovered(f)
	code := core.CodeOf(err)
	if errp != nil {
		fillError((*C.sws_error)(errp), code, err)
	}
	return int32(code)
}

// recovered runs f; core.Recover must be the deferred function itself for
// recover() to see the panic.
func recovered(f func() error) (err error) {
	defer core.Recover("capi", &err)
	return f()
}

// fillError writes err into out. On success only the code is written.
func fillError(out *C.sws_error, code core.Code, err error) {
	out.code = C.int32_t(code)
	if err == nil {
		out.text_len = 0
		out.text[0] = 0
		return
	}
	out.close_code, out.end_code, out.status, out.closed_by, out.dialing = 0, 0, 0, 0, 0
	out.reason[0] = 0
	var e *core.Error
	out.retry_after_us = 0
	if errors.As(err, &e) {
		out.status, out.retry_after_us = C.int32_t(e.Status), C.int64_t(e.RetryAfter.Microseconds())
		if end := e.End; end != nil {
			out.close_code, out.end_code = C.int32_t(end.Code), C.int32_t(end.Err)
			out.status, out.closed_by = C.int32_t(end.Status), C.int32_t(end.ClosedBy)
			if end.Dialing {
				out.dialing = 1
			}
			putString(unsafe.Pointer(&out.reason[0]), len(out.reason), end.Reason)
		}
	}
	msg := err.Error()
	if e != nil && e.End != nil && e.End.Detail != "" {
		msg = e.End.Detail
	}
	out.text_len = C.int64_t(len(msg))
	putString(unsafe.Pointer(&out.text[0]), len(out.text), msg)
}

// putString copies s, truncated and NUL-terminated, into a C char array.
func putString(p unsafe.Pointer, size int, s string) {
	buf := unsafe.Slice((*byte)(p), size)
	n := copy(buf[:size-1], s)
	buf[n] = 0
}

// withClient runs f on the client of handle h under guard.
func withClient(h int64, errp unsafe.Pointer, f func(e *entry) error) int32 {
	return guard(errp, func() error {
		e, err := lookup(h, kindClient)
		if err != nil {
			return err
		}
		return f(e)
	})
}

func invalid(name, msg string) error {
	return &core.Error{Code: core.CodeInvalidArgument, Op: name, Err: errors.New(msg)}
}

// buffer views caller memory p of n bytes. It refuses a NULL pointer with a
// non-zero size and a negative size.
func buffer(name string, p unsafe.Pointer, n int64) ([]byte, error) {
	switch {
	case n < 0:
		return nil, invalid(name, "negative size")
	case n == 0:
		return nil, nil
	case p == nil:
		return nil, invalid(name, "NULL pointer")
	}
	return unsafe.Slice((*byte)(p), n), nil
}

// store writes v through the caller's out-pointer p.
func store[T any](name string, p unsafe.Pointer, v T) error {
	if p == nil {
		return invalid(name, "NULL pointer")
	}
	*(*T)(p) = v
	return nil
}

// copyString copies s, NUL-terminated, into the caller's buffer of cap
// bytes and stores len(s) through outLen (which may be NULL). If s does not
// fit, the buffer gets a truncated copy and the result is
// CodeBufferTooSmall: the caller retries with *outLen + 1 bytes.
func copyString(p unsafe.Pointer, cap int64, s string, outLen unsafe.Pointer) error {
	buf, err := buffer("buf", p, cap)
	if err != nil {
		return err
	}
	if outLen != nil {
		*(*int64)(outLen) = int64(len(s))
	}
	if len(buf) == 0 {
		if len(s) == 0 {
			return nil
		}
		return tooSmall()
	}
	n := copy(buf[:len(buf)-1], s)
	buf[n] = 0
	if n < len(s) {
		return tooSmall()
	}
	return nil
}

func tooSmall() error {
	return &core.Error{Code: core.CodeBufferTooSmall, Op: "buf", Err: errors.New("buffer too small")}
}

// copyInt64s copies v into out (cap entries) and stores len(v) in *outN.
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

// timeoutMs checks a timeout in milliseconds: 0 means "check now".
func timeoutMs(ms int32) error {
	if ms < 0 {
		return invalid("timeout_ms", "must not be negative")
	}
	return nil
}

var errTimeout = errors.New("timed out")
