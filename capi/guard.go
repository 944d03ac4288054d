package main

import (
	"errors"
	"unsafe"

	"github.com/steadyws/steadyws/core"
	"github.com/steadyws/steadyws/core/testserver"
)

// guard is the one wrapper every export runs in: a panic becomes
// CodeInternal, an error is recorded for sws_last_error, and the result is
// the error's stable code.
func guard(h int64, f func() error) int32 {
	err := recovered(f)
	if err != nil {
		recordError(h, err)
	}
	return int32(core.CodeOf(err))
}

// recovered runs f; core.Recover must be the deferred function itself for
// recover() to see the panic.
func recovered(f func() error) (err error) {
	defer core.Recover("capi", &err)
	return f()
}

// withHandle runs f on the entry of client handle h under guard.
func withHandle(h int64, f func(e *entry) error) int32 {
	return guard(h, func() error {
		e, err := lookup(h)
		if err != nil {
			return err
		}
		if e.client == nil {
			return errNotClient
		}
		return f(e)
	})
}

// withServer runs f on the test server of handle h under guard.
func withServer(h int64, f func(e *entry, s *testserver.Server) error) int32 {
	return guard(h, func() error {
		e, err := lookup(h)
		if err != nil {
			return err
		}
		if e.server == nil {
			return errNotServer
		}
		return f(e, e.server)
	})
}

var (
	errNotClient = &core.Error{Code: core.CodeBadHandle, Op: "handle", Err: errors.New("a test server handle, not a connection")}
	errNotServer = &core.Error{Code: core.CodeBadHandle, Op: "handle", Err: errors.New("a connection handle, not a test server")}
)

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

var errTimeout = errors.New("timed out")
