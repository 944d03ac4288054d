package core

import (
	"errors"
	"fmt"

	"github.com/gobwas/ws"
)

// Close status codes, RFC 6455 7.4.1.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupported     = 1003
	CloseNoStatus        = 1005 // never sent: "the close frame had no code"
	CloseAbnormal        = 1006 // never sent: "no close frame at all"
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseMandatoryExt    = 1010
	CloseInternalError   = 1011
	CloseTLSHandshake    = 1015 // never sent
)

// CloseError is a close frame received from the peer (RFC 6455 5.5.1).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("closed by peer: %d %s", e.Code, e.Reason)
}

// AsCloseError finds the peer's close frame in err's chain.
func AsCloseError(err error) (*CloseError, bool) {
	var ce *CloseError
	ok := errors.As(err, &ce)
	return ce, ok
}

// ValidateCloseCode accepts the codes an endpoint may send (RFC 6455 7.4.1
// and 7.4.2): the defined ones except those reserved for reporting, and the
// 3000-4999 range for libraries and applications.
func ValidateCloseCode(code int) error {
	switch {
	case code >= 3000 && code <= 4999:
		return nil
	case code == CloseNoStatus || code == CloseAbnormal || code == CloseTLSHandshake:
	case code >= 1000 && code <= 1014 && code != 1004:
		return nil
	}
	return invalidArg("code", "%d may not be sent (use 1000-1003, 1007-1014 or 3000-4999)", code)
}

// parseClose reads a close frame body (RFC 6455 5.5.1): empty, or a 2-byte
// code followed by a UTF-8 reason. A 1-byte body, a code that may not be
// sent, or invalid UTF-8 is a protocol error (RFC 6455 7.4.1, 8.1).
func parseClose(body []byte) (*CloseError, error) {
	if len(body) == 0 {
		return &CloseError{Code: CloseNoStatus}, nil
	}
	if len(body) == 1 {
		return nil, ws.ProtocolError("close frame body of 1 byte")
	}
	code, reason := ws.ParseCloseFrameData(body)
	if err := ws.CheckCloseFrameData(code, reason); err != nil {
		return nil, err
	}
	if c := int(code); c < 1000 || c >= 5000 || c == CloseNoStatus || c == CloseAbnormal || c == CloseTLSHandshake {
		return nil, ws.ErrProtocolStatusCodeUnknown
	}
	return &CloseError{Code: int(code), Reason: reason}, nil
}

// closeCodeFor is the code we send when err ends the connection from our
// side, RFC 6455 7.4.1.
func closeCodeFor(err error) int {
	switch CodeOf(err) {
	case CodeProtocol:
		if errors.Is(err, errInvalidUTF8) || errors.Is(err, ws.ErrProtocolInvalidUTF8) {
			return CloseInvalidPayload
		}
		return CloseProtocolError
	case CodeMessageTooBig:
		return CloseMessageTooBig
	case CodeQueueFull:
		return ClosePolicyViolation
	case CodeInternal:
		return CloseInternalError
	}
	return CloseAbnormal
}

// CheckClose checks a close code and reason as Close would.
func CheckClose(code int, reason string) error {
	if err := ValidateCloseCode(code); err != nil {
		return err
	}
	return validCloseReason(reason)
}
