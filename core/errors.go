package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Code is a stable error code shared with the C API and the Python package.
// Values are part of the ABI: they never change, new ones are appended.
type Code int32

// The error codes. capi's header and the Python package get them from the
// ABI table (abi.go) through go generate; a test fails when they drift.
const (
	CodeOK              Code = 0  // success
	CodeInvalidArgument Code = 1  // bad parameter; the message names it
	CodeBadHandle       Code = 2  // unknown, freed or garbage handle
	CodeTimeout         Code = 3  // a deadline passed (open, write, close)
	CodeClosed          Code = 4  // the connection is closed (normally or not)
	CodeNotConnected    Code = 5  // not open yet (connecting or reconnecting)
	CodeHandshake       Code = 6  // the HTTP upgrade failed; Status says why
	CodeTLS             Code = 7  // TLS handshake or certificate verification failed
	CodeDNS             Code = 8  // the host name could not be resolved
	CodeRefused         Code = 9  // TCP connection refused
	CodeReset           Code = 10 // connection reset by peer or broken pipe
	CodeProtocol        Code = 11 // the peer broke RFC 6455 (close 1002 or 1007)
	CodeMessageTooBig   Code = 12 // a message exceeded max_message_size (close 1009)
	CodeQueueFull       Code = 13 // the inbound queue overflowed
	CodeBufferTooSmall  Code = 14 // a caller-supplied buffer cannot hold the result
	CodeInternal        Code = 15 // a recovered panic or an engine bug
	CodeNetwork         Code = 16 // any other network I/O failure
	CodeProxy           Code = 17 // the proxy refused or failed; Status has its HTTP status
	CodeType            Code = 18 // an argument has the wrong type; the message names it
	CodeWouldBlock      Code = 19 // a non-blocking call could not start now; try again later
	CodeRateLimited     Code = 20 // the rate limit has no room now; RetryAfter says when it will
)

// codeDocs describe the codes, in order; the C header and the Python
// package get names and text from here (see ABI).
var codeDocs = [...]struct{ name, doc string }{
	{"OK", "success"},
	{"INVALID_ARGUMENT", "bad parameter value; the message names it"},
	{"BAD_HANDLE", "unknown, freed or garbage handle"},
	{"TIMEOUT", "a deadline passed (open, write, close, wait)"},
	{"CLOSED", "the connection has ended; the error carries how"},
	{"NOT_CONNECTED", "not open (yet): connecting, reconnecting, or on_open has not returned"},
	{"HANDSHAKE", "the HTTP upgrade failed; status says why"},
	{"TLS", "TLS handshake or certificate verification failed"},
	{"DNS", "the host name could not be resolved"},
	{"REFUSED", "TCP connection refused"},
	{"RESET", "connection reset by peer or broken pipe"},
	{"PROTOCOL", "the peer broke RFC 6455 (we closed with 1002 or 1007)"},
	{"MESSAGE_TOO_BIG", "a message exceeded max_message_size (we closed with 1009)"},
	{"QUEUE_FULL", "the inbound queue overflowed under overflow=close (we closed with 1008)"},
	{"BUFFER_TOO_SMALL", "a caller buffer is too small; retry with the size given"},
	{"INTERNAL", "a recovered panic or an engine bug"},
	{"NETWORK", "any other network failure"},
	{"PROXY", "the proxy refused or failed; status has its HTTP status"},
	{"TYPE", "an argument has the wrong type; the message names it"},
	{"WOULD_BLOCK", "a non-blocking call could not start now; try again"},
	{"RATE_LIMITED", "the rate limit (send_rate) has no room now; retry_after_us says when it will"},
}

// NumCodes is the number of defined codes.
const NumCodes = len(codeDocs)

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeDocs) {
		return codeDocs[c].name
	}
	return fmt.Sprintf("Code(%d)", int32(c))
}

// Error is the one error type the engine returns. It is created once, where
// the failure is understood, and wrapped nowhere else.
type Error struct {
	Code   Code
	Op     string // what was being done: "dial", "read", "write", "close", ...
	Status int    // HTTP status of a failed handshake, 0 otherwise
	Err    error  // the cause, if any

	RetryAfter time.Duration // what a 429 or 503 asked for; CodeRateLimited: when the budget has room
	End        *End          // CodeClosed: how the client ended, when it ended for good
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Status != 0 {
		msg += fmt.Sprintf(": HTTP status %d", e.Status)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the code of err: CodeOK for nil, the Code of an *Error, and
// a classification of anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return classify(err)
}

// wrap turns err into an *Error for op, classifying it unless it already is
// one. It returns nil for nil.
func wrap(op string, err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: classify(err), Op: op, Err: err}
}

func invalidArg(name, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Op: name, Err: fmt.Errorf(format, args...)}
}

func wrongType(name, format string, args ...any) *Error {
	return &Error{Code: CodeType, Op: name, Err: fmt.Errorf(format, args...)}
}

// classify maps errors from the standard library and gobwas/ws to codes.
// Order matters: a TLS error may wrap a net error, a DNS error is a net.Error.
func classify(err error) Code {
	var (
		dnsErr    *net.DNSError
		status    ws.StatusError
		protoErr  ws.ProtocolError
		closeErr  *CloseError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		verifyErr *tls.CertificateVerificationError
		authErr   x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &closeErr), errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		return CodeClosed
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return CodeDNS
	case errors.As(err, &verifyErr), errors.As(err, &authErr), errors.As(err, &hostErr),
		errors.As(err, &certErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return CodeTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return CodeTimeout
	case errors.As(err, &status), isHandshakeErr(err):
		return CodeHandshake
	case errors.Is(err, syscall.ECONNREFUSED):
		return CodeRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return CodeReset
	case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		return CodeMessageTooBig
	case errors.As(err, &protoErr), errors.Is(err, wsutil.ErrInvalidUTF8),
		errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
		return CodeProtocol
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CodeClosed
	}
	return CodeNetwork
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isHandshakeErr reports the errors gobwas/ws returns for a malformed or
// non-conforming 101 response (RFC 6455 4.2.2).
func isHandshakeErr(err error) bool {
	for _, target := range []error{
		ws.ErrHandshakeBadProtocol, ws.ErrHandshakeBadUpgrade, ws.ErrHandshakeBadConnection,
		ws.ErrHandshakeBadSecAccept, ws.ErrHandshakeBadSubProtocol, ws.ErrHandshakeBadExtensions,
		ws.ErrMalformedResponse, ws.ErrHandshakeBadStatus, errHandshakeTooLarge,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// panicError converts a recovered panic value into an internal error.
func panicError(op string, r any) *Error {
	return &Error{Code: CodeInternal, Op: op, Err: fmt.Errorf("recovered panic: %v", r)}
}

// internalError is a panic that spawn recovered in a goroutine.
func internalError(err error) *Error {
	return &Error{Code: CodeInternal, Op: "engine", Err: err}
}

// Recover is deferred at the top of every API entry point: a panic becomes
// an internal *Error stored in *errp instead of a crash of the host process.
// (Goroutines recover through package spawn.)
func Recover(op string, errp *error) {
	if r := recover(); r != nil {
		*errp = panicError(op, r)
	}
}
