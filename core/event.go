package core

import (
	"math"
	"time"
)

// EventKind says what an Event carries. Values are part of the ABI.
type EventKind uint32

// The event kinds.
const (
	EventText   EventKind = 1 // Data is a UTF-8 text message; Runes its length in code points
	EventBinary EventKind = 2 // Data is a binary message
	EventOpen   EventKind = 3 // the connection is open; Data is the subprotocol chosen
	EventClosed EventKind = 4 // terminal; Data is the close reason or the error; see Close*, Err, Status

	// EventDisconnected: an open connection was lost (not by Close). Same
	// fields as EventClosed; a reconnect attempt or EventClosed follows.
	EventDisconnected EventKind = 5
	// EventReconnecting: attempt Runes will be dialled after Delay; Err and
	// Data say why the last connection or attempt failed.
	EventReconnecting EventKind = 6
	// EventWarning: the queue is in trouble; Runes is WarnDrops or
	// WarnHighWater, Count the drops or the depth, Data a message.
	EventWarning EventKind = 7
)

// Event is one item of the inbound queue: a message or a lifecycle change.
// Messages and lifecycle events share one queue so they are seen in order.
type Event struct {
	Kind  EventKind
	Data  []byte
	Runes int // EventText: number of code points, so Python can slice one decoded str

	// EventClosed and EventDisconnected.
	CloseCode int  // as received, or 1005 (no code) / 1006 (no close frame)
	Err       Code // why it ended: CodeOK after a clean close
	Status    int  // HTTP status when the opening handshake failed
	Dialing   bool // the failure happened while connecting, not on an open connection

	Delay time.Duration // EventReconnecting
	Count int64         // EventWarning
}

func (e *Event) isMessage() bool { return e.Kind == EventText || e.Kind == EventBinary }

// MetaWords is the number of uint32 words describing one event in a polled
// batch: kind, data length, a, b. For EventText, a = code points; for
// EventClosed and EventDisconnected, a = close code | HTTP status << 16;
// b = error code | 1 << 16 if it failed while connecting. For EventReconnecting, a = attempt and b = delay in
// milliseconds. For EventWarning, a = the warning (WarnDrops,
// WarnHighWater) and b = its count.
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
		m[0], m[1], m[2], m[3] = uint32(ev.Kind), uint32(len(ev.Data)), ev.word2(), ev.word3()
		size += copy(data[size:], ev.Data)
		n++
	}
	return n, size
}

func (e *Event) word2() uint32 {
	if e.Kind == EventClosed || e.Kind == EventDisconnected {
		return uint32(e.CloseCode)&0xffff | uint32(e.Status)<<16
	}
	return uint32(e.Runes)
}

func (e *Event) word3() uint32 {
	switch {
	case e.Kind == EventReconnecting:
		return uint32(e.Delay.Milliseconds())
	case e.Kind == EventWarning:
		return uint32(min(e.Count, math.MaxUint32))
	case e.Dialing:
		return uint32(e.Err) | 1<<16
	}
	return uint32(e.Err)
}

// DecodeEvents is the inverse of EncodeEvents, for tests and Go consumers of
// the packed form.
func DecodeEvents(meta []uint32, data []byte, n int) []Event {
	out := make([]Event, 0, n)
	off := 0
	for i := 0; i < n; i++ {
		m := meta[i*MetaWords : (i+1)*MetaWords]
		ev := Event{Kind: EventKind(m[0]), Data: data[off : off+int(m[1])], Err: Code(m[3] & 0xffff), Dialing: m[3]>>16 == 1}
		off += int(m[1])
		switch ev.Kind {
		case EventClosed, EventDisconnected:
			ev.CloseCode, ev.Status = int(m[2]&0xffff), int(m[2]>>16)
		case EventReconnecting:
			ev.Runes, ev.Delay, ev.Err = int(m[2]), time.Duration(m[3])*time.Millisecond, CodeOK
		case EventWarning:
			ev.Runes, ev.Count, ev.Err = int(m[2]), int64(m[3]), CodeOK
		default:
			ev.Runes = int(m[2])
		}
		out = append(out, ev)
	}
	return out
}
