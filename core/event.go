package core

// EventKind says what an Event carries. Values are part of the ABI.
type EventKind uint32

// The event kinds.
const (
	EventText   EventKind = 1 // Data is a UTF-8 text message; Runes its length in code points
	EventBinary EventKind = 2 // Data is a binary message
	EventOpen   EventKind = 3 // the connection is open; Data is the subprotocol chosen
	EventClosed EventKind = 4 // terminal; Data is the close reason; see Close*, Err, Status
)

// Event is one item of the inbound queue: a message or a lifecycle change.
// Messages and lifecycle events share one queue so they are seen in order.
type Event struct {
	Kind  EventKind
	Data  []byte
	Runes int // EventText: number of code points, so Python can slice one decoded str

	// EventClosed only.
	CloseCode int  // as received, or 1005 (no code) / 1006 (no close frame)
	Err       Code // why it ended: CodeOK after a clean close
	Status    int  // HTTP status when the opening handshake failed
}

func (e *Event) isMessage() bool { return e.Kind == EventText || e.Kind == EventBinary }

// MetaWords is the number of uint32 words describing one event in a polled
// batch: kind, data length, a, b. For EventText, a = code points; for
// EventClosed, a = close code | HTTP status << 16 and b = error code.
const MetaWords = 4

// EncodeEvents packs events into caller-owned buffers: MetaWords words per
// event in meta (native byte order) and the data back to back in data. It
// stops at the first event that does not fit and returns how many events and
// data bytes it wrote.
func EncodeEvents(events []Event, meta []uint32, data []byte) (n, size int) {
	for n < len(events) && (n+1)*MetaWords <= len(meta) {
		ev := &events[n]
		if len(ev.Data) > len(data)-size {
			break
		}
		m := meta[n*MetaWords : (n+1)*MetaWords]
		m[0], m[1], m[2], m[3] = uint32(ev.Kind), uint32(len(ev.Data)), ev.word2(), uint32(ev.Err)
		size += copy(data[size:], ev.Data)
		n++
	}
	return n, size
}

func (e *Event) word2() uint32 {
	if e.Kind == EventClosed {
		return uint32(e.CloseCode)&0xffff | uint32(e.Status)<<16
	}
	return uint32(e.Runes)
}

// DecodeEvents is the inverse of EncodeEvents, for tests and Go consumers of
// the packed form.
func DecodeEvents(meta []uint32, data []byte, n int) []Event {
	out := make([]Event, 0, n)
	off := 0
	for i := 0; i < n; i++ {
		m := meta[i*MetaWords : (i+1)*MetaWords]
		ev := Event{Kind: EventKind(m[0]), Data: data[off : off+int(m[1])], Err: Code(m[3])}
		off += int(m[1])
		if ev.Kind == EventClosed {
			ev.CloseCode, ev.Status = int(m[2]&0xffff), int(m[2]>>16)
		} else {
			ev.Runes = int(m[2])
		}
		out = append(out, ev)
	}
	return out
}
