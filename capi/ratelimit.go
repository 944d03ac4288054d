package main

// #include <stdint.h>
import "C"

import (
	"time"
	"unsafe"

	"github.com/steadyws/steadyws/core"
)

// The flags of sws_ratelimit_new.
const (
	rateControlFrames = 1 // our pings and pongs take grants too
	rateWait          = 2 // a send waits for a grant, up to write_timeout
)

func init() {
	// A RateLimit crosses sws_connect's JSON as its handle; this is where
	// the engine's option parser turns it back into the limit.
	core.ResolveRateLimit = func(h int64) (*core.RateLimit, bool) {
		e, err := lookup(h, kindRateLimit)
		if err != nil {
			return nil, false
		}
		return e.limit, true
	}
}

// sws_ratelimit_new stores in *out_handle a budget of rate messages (or
// dial attempts) within any per_us microseconds, shared by every
// connection given it (the options send_rate and connect_rate); burst
// (0: none) smooths it; flags: 1 = control frames count, 2 = sends wait
// for room. Free it with sws_free (connections that use it keep it).
//
//export sws_ratelimit_new
func sws_ratelimit_new(rate int64, perUs int64, burst int64, flags int32, outHandle unsafe.Pointer, errp unsafe.Pointer) int32 {
	return guard(errp, func() error {
		if outHandle == nil {
			return invalid("out_handle", "NULL pointer")
		}
		if flags&^(rateControlFrames|rateWait) != 0 {
			return invalid("flags", "unknown flags")
		}
		if rate > core.MaxRate {
			rate = core.MaxRate + 1 // refused below, without overflowing int
		}
		r, err := core.NewRateLimit(int(rate), time.Duration(perUs)*time.Microsecond, int(min(burst, rate+1)),
			flags&rateControlFrames != 0, flags&rateWait != 0)
		if err != nil {
			return err
		}
		return store("out_handle", outHandle, register(&entry{kind: kindRateLimit, limit: r}))
	})
}
