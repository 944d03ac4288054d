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
	// EventOpen: a connection is open; Data is the subprotocol chosen,
	// Runes the connection's number (1 for the first, counting reconnects).
	EventOpen EventKind = 3
	// EventClosed is the last event: the client ended for good; see End.
	EventClosed EventKind = 4
	// EventDisconnected: an open connection was lost (not by Close); see
	// End. An EventReconnecting or the EventClosed follows.
	EventDisconnected EventKind = 5
	// EventReconnecting: attempt Runes will be dialled after Delay; Data
	// says why the last connection or attempt failed.
	EventReconnecting EventKind = 6
	// EventWarning: the queue is in trouble; Runes is WarnDrops or
	// WarnHighWater, Count the drops or the depth, Data a message.
	EventWarning EventKind = 7
	// EventHeaders goes to the observer only: reconnect attempt Runes waits
	// for its handshake headers (Client.ProvideHeaders).
	EventHeaders EventKind = 8
	// EventRotated: a rotation switched delivery to connection Runes (its
	// EventOpen came before); the old connection closes with 1000.
	EventRotated EventKind = 9
)

// Event is one item of a client's event stream: a message or a lifecycle
// change, in the order they happened.
type Event struct {
	Kind  EventKind
	Data  []byte
	Runes int // see the kinds

	End   End           // EventClosed, EventDisconnected; Data is End.Reason + End.Detail
	Delay time.Duration // EventReconnecting
	Count int64         // EventWarning
	// Time is when it happened, in unix nanoseconds (time.time_ns()'s
	// clock): for a message, when its last frame was read from the socket.
	Time int64
}

func (e *Event) isMessage() bool { return e.Kind == EventText || e.Kind == EventBinary }

// droppable reports a lifecycle event that a full backlog of a consumer's
// stream may lose: its news is superseded by what follows it. Only the end
// is kept whatever happens.
func (e *Event) droppable() bool { return e.Kind != EventClosed }

// MetaWords is the number of uint32 words describing one event in a polled
// batch: kind, data length, a, b. What a and b hold, by kind:
//   - EventText: a = code points.
//   - EventOpen: a = connection number.
//   - EventClosed, EventDisconnected: a = close code | HTTP status << 16;
//     b = error code | dialing << EndDialingShift | side << EndSideShift |
//     reason length << EndReasonShift (the data is the reason, then the
//     detail).
//   - EventReconnecting: a = attempt, b = delay in milliseconds.
//   - EventWarning: a = WarnDrops or WarnHighWater, b = its count.
//   - EventHeaders: a = request number.
//
// Words 4 and 5 are Event.Time, low word first: the uint64 at byte 16 of
// the event's 24 bytes, in the native (little-endian) order.
const MetaWords = 6

// The bit layout of word b of an ended event.
const (
	EndErrMask      = 0xff
	EndDialingShift = 8
	EndSideShift    = 9
	EndSideMask     = 0x3
	EndReasonShift  = 16
)

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
		m[4], m[5] = uint32(ev.Time), uint32(uint64(ev.Time)>>32)
		size += copy(data[size:], ev.Data)
		n++
	}
	return n, size
}

func (e *Event) ended() bool { return e.Kind == EventClosed || e.Kind == EventDisconnected }

func (e *Event) word2() uint32 {
	if e.ended() {
		return uint32(e.End.Code)&0xffff | uint32(e.End.Status)<<16
	}
	return uint32(e.Runes)
}

func (e *Event) word3() uint32 {
	switch {
	case e.Kind == EventReconnecting:
		return uint32(min(e.Delay.Milliseconds(), math.MaxUint32))
	case e.Kind == EventWarning:
		return uint32(min(e.Count, math.MaxUint32))
	case e.ended():
		w := uint32(e.End.Err)&EndErrMask | uint32(e.End.ClosedBy&EndSideMask)<<EndSideShift |
			uint32(min(len(e.End.Reason), 0xffff))<<EndReasonShift
		if e.End.Dialing {
			w |= 1 << EndDialingShift
		}
		return w
	}
	return 0
}

// DecodeEvents is the inverse of EncodeEvents, for tests and Go consumers of
// the packed form.
func DecodeEvents(meta []uint32, data []byte, n int) []Event {
	out := make([]Event, 0, n)
	off := 0
	for i := 0; i < n; i++ {
		m := meta[i*MetaWords : (i+1)*MetaWords]
		ev := Event{Kind: EventKind(m[0]), Data: data[off : off+int(m[1])], Time: int64(uint64(m[4]) | uint64(m[5])<<32)}
		off += int(m[1])
		switch ev.Kind {
		case EventClosed, EventDisconnected:
			r := int(m[3] >> EndReasonShift)
			ev.End = End{
				Code: int(m[2] & 0xffff), Status: int(m[2] >> 16), Err: Code(m[3] & EndErrMask),
				Dialing: m[3]>>EndDialingShift&1 == 1, ClosedBy: Side(m[3] >> EndSideShift & EndSideMask),
				Reason: string(ev.Data[:r]), Detail: string(ev.Data[r:]),
			}
		case EventReconnecting:
			ev.Runes, ev.Delay = int(m[2]), time.Duration(m[3])*time.Millisecond
		case EventWarning:
			ev.Runes, ev.Count = int(m[2]), int64(m[3])
		default:
			ev.Runes = int(m[2])
		}
		out = append(out, ev)
	}
	return out
}
