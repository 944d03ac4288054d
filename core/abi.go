package core

// ABIVersion changes whenever a signature or a layout of the C ABI changes.
const ABIVersion = 4

// ABIValue is one named constant of the C ABI.
type ABIValue struct {
	Name  string
	Value int64
	Doc   string
}

// ABIEnum is a group of constants: an enum in C, a class or a tuple in Python.
type ABIEnum struct {
	Name   string // C enum tag and Python name
	Prefix string // C constant prefix
	Doc    string
	Values []ABIValue
}

// ABIDescription is everything the C header and the Python package must
// agree on with the engine. It is the one place these are written: go
// generate ./capi renders it into capi/sws_abi.h and
// python/steadyws/_abi.py, and a test fails when those drift.
type ABIDescription struct {
	Version   int
	Enums     []ABIEnum
	Constants []ABIValue // #defines in C, module constants in Python
	StatNames []string
	Options   []Option
	Backoff   Backoff // reconnect=True
}

// ABI returns the description.
func ABI() ABIDescription {
	codes := make([]ABIValue, len(codeDocs))
	for i, c := range codeDocs {
		codes[i] = ABIValue{c.name, int64(i), c.doc}
	}
	states := make([]ABIValue, len(stateNames))
	for i, n := range stateNames {
		states[i] = ABIValue{n, int64(i), stateDocs[i]}
	}
	return ABIDescription{
		Version: ABIVersion,
		Enums: []ABIEnum{
			{"sws_code", "SWS_ERR_", "Every function returns one of these; 0 is OK.", codes},
			{"sws_state", "SWS_STATE_", "Connection states (sws_state).", states},
			{"sws_event_kind", "SWS_EVENT_", "Kinds of the events of a polled batch (see SWS_META_WORDS).", eventKinds()},
			{"sws_side", "SWS_SIDE_", "Who sent the first close frame of a connection.", []ABIValue{
				{"none", int64(SideNone), "nobody: the connection was lost"},
				{"client", int64(SideClient), "we did: close(), or a protocol error"},
				{"server", int64(SideServer), "the server did"},
			}},
			{"sws_send_flags", "SWS_SEND_", "Flags of sws_send and sws_send_batch.", []ABIValue{
				{"TEXT", int64(SendText), "text frames (UTF-8), else binary"},
				{"NO_WAIT", int64(SendNoWait), "never block: SWS_ERR_WOULD_BLOCK while another write is in progress"},
			}},
			{"sws_poll_flags", "SWS_POLL_", "Flags of sws_poll.", []ABIValue{
				{"FAST", int64(PollFast), "do not wait; with nothing queued, read what the socket has on this thread"},
			}},
			{"sws_warn_kind", "SWS_WARN_", "Warnings (the a word of SWS_EVENT_WARNING).", []ABIValue{
				{"DROPS", WarnDrops, "messages were dropped; b = how many since the last warning"},
				{"HIGH_WATER", WarnHighWater, "the queue passed 80% of a bound; b = its depth"},
			}},
		},
		Constants: []ABIValue{
			{"META_WORDS", MetaWords, "uint32 words per event in a polled batch: kind, length, a, b, then the time (unix ns, a uint64 at byte 16)"},
			{"END_ERR_MASK", EndErrMask, "word b of CLOSED and DISCONNECTED: the sws_code of the end"},
			{"END_DIALING_SHIFT", EndDialingShift, "word b: 1 if the end came while connecting"},
			{"END_SIDE_SHIFT", EndSideShift, "word b: the sws_side, 2 bits"},
			{"END_SIDE_MASK", EndSideMask, "mask of the side after the shift"},
			{"END_REASON_SHIFT", EndReasonShift, "word b: the length of the reason, which the data starts with"},
			{"ERROR_TEXT", errorTextSize, "bytes of sws_error.text"},
			{"ERROR_REASON", errorReasonSize, "bytes of sws_error.reason"},
		},
		StatNames: StatNames[:],
		Options:   OptionTable(),
		Backoff:   DefaultBackoff,
	}
}

// The sizes of the text buffers of the C API's sws_error.
const (
	errorTextSize   = 1024
	errorReasonSize = 128
)

func eventKinds() []ABIValue {
	return []ABIValue{
		{"TEXT", int64(EventText), "a UTF-8 text message; a = its length in code points"},
		{"BINARY", int64(EventBinary), "a binary message"},
		{"OPEN", int64(EventOpen), "a connection opened; a = its number; data = the subprotocol"},
		{"CLOSED", int64(EventClosed), "the last event: a = close code | HTTP status << 16, b = see END_*; data = reason + detail"},
		{"DISCONNECTED", int64(EventDisconnected), "an open connection was lost; as CLOSED; RECONNECTING or CLOSED follows"},
		{"RECONNECTING", int64(EventReconnecting), "a = attempt, b = delay in ms; data = why the last attempt failed"},
		{"WARNING", int64(EventWarning), "a = an sws_warn_kind, b = its count; data = a message"},
		{"HEADERS", int64(EventHeaders), "hub observers only: attempt a waits for sws_provide_headers(handle, a, ...)"},
		{"ROTATED", int64(EventRotated), "a rotation switched delivery to connection a; the old one closes with 1000"},
	}
}

// stateDocs describe the states, in order.
var stateDocs = [...]string{
	"dialling, in the opening handshake, or waiting for on_open",
	"messages flow both ways",
	"the connection was lost; waiting to dial again",
	"close() was called, the peer started the close handshake, or the end is decided",
	"terminal: no goroutine of this client is left",
}

// ErrorSizes returns the sizes of sws_error's text buffers.
func ErrorSizes() (text, reason int) { return errorTextSize, errorReasonSize }
