package core

// Side says which endpoint sent the first close frame of a connection.
// Values are part of the ABI.
type Side int32

// The sides.
const (
	SideNone   Side = 0 // no close frame was exchanged: the connection was lost
	SideClient Side = 1 // we sent the first close frame (Close, or a protocol error)
	SideServer Side = 2 // the server sent the first close frame
)

var sideNames = [...]string{"none", "client", "server"}

func (s Side) String() string {
	if s >= 0 && int(s) < len(sideNames) {
		return sideNames[s]
	}
	return "unknown"
}

// End is how a connection, or the whole client, ended: one description
// that the terminal event, a failed Send and the C API's error all carry,
// so every way of asking tells the same story.
type End struct {
	// Code is the close code received, the one we closed with, 1005 for a
	// close frame without a code, or 1006 when no close frame was exchanged.
	Code   int
	Reason string
	// Err is the failure that ended it: CodeOK after a clean close
	// handshake (or our own Close), else what went wrong.
	Err    Code
	Status int    // HTTP status when the opening handshake failed
	Detail string // the failure's message, "" after a clean close
	// Dialing is set when the end came while connecting, not on an open
	// connection.
	Dialing  bool
	ClosedBy Side
}

// endOf describes err, the cause a connection ended with. closedBy is who
// sent the first close frame, if anyone did.
func endOf(err error, closedBy Side) End {
	if ce, ok := AsCloseError(err); ok {
		return End{Code: ce.Code, Reason: ce.Reason, ClosedBy: closedBy}
	}
	e := wrap("connection", err)
	end := End{Code: CloseAbnormal, Err: e.Code, Status: e.Status, Detail: e.Error(), ClosedBy: closedBy}
	end.Dialing = e.Op == "dial" || e.Op == "proxy" || e.Op == "headers"
	if code := closeCodeFor(err); code != CloseAbnormal {
		end.Code = code
		if closedBy == SideNone {
			end.ClosedBy = SideClient // we close with that code (RFC 6455 7.1.7)
		}
	}
	return end
}

// event is the end as an event of kind (EventClosed or EventDisconnected);
// its data is the reason followed by the detail.
func (e End) event(kind EventKind) Event {
	return Event{Kind: kind, Data: []byte(e.Reason + e.Detail), End: e}
}

// closedError is the error a call returns once the client has ended: it
// carries the End, so the caller can raise what the event stream raises.
func (e End) closedError(op string) *Error {
	end := e
	return &Error{Code: CodeClosed, Op: op, Err: errClientEnded, End: &end}
}
