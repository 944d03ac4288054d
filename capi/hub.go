package main

// #include <stdint.h>
import "C"

import (
	"time"
	"unsafe"

	"github.com/steadyws/steadyws/core"
)

// sws_hub_new stores in *out_hub a new hub: one event stream for many
// connections (sws_connect with hub and mode), polled with sws_hub_poll.
//
//export sws_hub_new
func sws_hub_new(outHub, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		if outHub == nil {
			return invalid("out_hub", "NULL pointer")
		}
		return store("out_hub", outHub, register(&entry{kind: kindHub, hub: core.NewHub()}))
	})
}

// sws_hub_poll waits up to timeout_ms (0: only checks) for members with
// events and copies up to max_events of them into meta (SWS_META_WORDS
// words each) and data, with each event's member id in src (max_events
// uint32 values); at most per_member events of one member, members taking
// turns. A member whose events were handed out gets no more until
// sws_hub_ack. BUFFER_TOO_SMALL as for sws_poll.
//
//export sws_hub_poll
func sws_hub_poll(hub int64, meta, src unsafe.Pointer, maxEvents int32, data unsafe.Pointer, dataCap int64, perMember, timeout int32, outCount, outLen, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		e, err := lookup(hub, kindHub)
		if err != nil {
			return err
		}
		out, err := newBatch(meta, maxEvents, data, dataCap, timeout, outCount, outLen)
		if err != nil {
			return err
		}
		if src == nil || perMember <= 0 {
			return invalid("src", "need a src buffer and per_member > 0")
		}
		ids := unsafe.Slice((*uint32)(src), maxEvents)
		e.pollMu.Lock()
		defer e.pollMu.Unlock()
		events, from := e.events(int(maxEvents))
		n, need, err := e.hubPoll(events, from, len(out.data), int(perMember), time.Duration(timeout)*time.Millisecond)
		copy(ids, from[:n])
		return out.fill(events, n, need, err)
	})
}

// hubPoll polls the hub; waiting, it waits in the kernel on the hub's
// eventfd (made on first use), as sws_poll does on a connection's.
func (e *entry) hubPoll(events []core.Event, from []uint32, maxBytes, perMember int, wait time.Duration) (n, need int, err error) {
	if wait <= 0 {
		return e.hub.Poll(events, from, maxBytes, perMember, 0)
	}
	fd, err := e.wakeupFD(func(s core.Signal) { e.hub.SetSignal(s) })
	if err != nil {
		return 0, 0, err
	}
	return e.hub.PollWait(events, from, maxBytes, perMember, wait, int(fd))
}

// sws_hub_ack tells the hub that the last batches of the count members in
// members (uint32 ids) were handled: their messages stop counting against
// their bounds and they may get more. One call for every member a poll
// served.
//
//export sws_hub_ack
func sws_hub_ack(hub int64, members unsafe.Pointer, count int32, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		e, err := lookup(hub, kindHub)
		if err != nil {
			return err
		}
		if count < 0 || (count > 0 && members == nil) {
			return invalid("members", "need count >= 0 ids")
		}
		if count > 0 {
			e.hub.Ack(unsafe.Slice((*uint32)(members), count)...)
		}
		return nil
	})
}

// sws_hub_wakeup_fd stores in *out_fd an eventfd readable exactly while
// members have events to hand out. The library closes it in sws_free.
//
//export sws_hub_wakeup_fd
func sws_hub_wakeup_fd(hub int64, outFd, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		e, err := lookup(hub, kindHub)
		if err != nil {
			return err
		}
		if outFd == nil {
			return invalid("out_fd", "NULL pointer")
		}
		fd, err := e.wakeupFD(func(s core.Signal) { e.hub.SetSignal(s) })
		if err != nil {
			return err
		}
		return store("out_fd", outFd, fd)
	})
}
