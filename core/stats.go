package core

import (
	"sync/atomic"
	"time"
)

// Stat indexes a counter of a Client. The order is part of the ABI: the C
// API copies the counters into an int64 array in this order, and names them
// through StatNames.
type Stat int

// The counters.
const (
	StatMessagesIn Stat = iota
	StatBytesIn
	StatMessagesOut
	StatBytesOut
	StatQueueDepth     // messages waiting for the consumer (a gauge)
	StatQueueBytes     // bytes waiting for the consumer (a gauge)
	StatQueueHighWater // most messages ever waiting at once
	StatDropped        // messages dropped by the overflow policy or after a local close
	StatPingsReceived
	StatPongsReceived
	StatConnects // successful opening handshakes
	StatReconnects
	StatAttempt // reconnect attempts since the last healthy connection (a gauge)
	StatPingsSent
	StatLastRTTMicros
	StatPingsAfterDeath // pings tried on a connection already dead: always 0
	StatReaderBlockedMillis
	StatConnectedMillis // how long the current connection has been open (a gauge)
	StatCompressedIn    // messages that arrived compressed (permessage-deflate)
	StatEventsDropped   // lifecycle events dropped for a consumer that does not read (see maxLifecycle)
	StatFastMessages    // messages read on a waiting consumer's thread (the fast path, turn.go)
	StatLastDataMillis  // how long ago the last data message arrived, -1 before the first (a gauge)
	StatStale           // connections ended by max_silence
	StatRateWaited      // messages (and control frames) that waited for send_rate
	StatRateRefused     // sends send_rate refused (RateLimited)
	StatRotations       // rotations completed (Rotate, max_connection_age)
	StatRotationFailures
	StatDuplicatesDropped // messages of a rotation's new connection the old one had delivered
	NumStats
)

// StatNames are the counters' names, as Python's stats() shows them.
var StatNames = [NumStats]string{
	"messages_in", "bytes_in", "messages_out", "bytes_out",
	"queue_depth", "queue_bytes", "queue_high_water", "dropped",
	"pings_received", "pongs_received", "connects", "reconnects", "attempt",
	"pings_sent", "last_rtt_us", "pings_after_death", "reader_blocked_ms", "connected_ms",
	"compressed_in", "events_dropped", "messages_fast", "last_data_age_ms", "stale",
	"rate_waited", "rate_refused", "rotations", "rotation_failures", "duplicates_dropped",
}

type stats struct {
	v [NumStats]atomic.Int64
}

func (s *stats) add(i Stat, n int64) { s.v[i].Add(n) }

// Stats returns a snapshot of the client's counters, indexed by Stat.
func (c *Client) Stats() [NumStats]int64 {
	var out [NumStats]int64
	for i := range out {
		out[i] = c.stats.v[i].Load()
	}
	depth, size, high, dropped, lifeLost := c.q.depth()
	out[StatQueueDepth], out[StatQueueBytes], out[StatQueueHighWater] = int64(depth), size, int64(high)
	out[StatDropped], out[StatEventsDropped] = dropped, lifeLost
	if at := c.openedAt.Load(); at != 0 {
		out[StatConnectedMillis] = time.Since(time.Unix(0, at)).Milliseconds()
	}
	out[StatLastDataMillis] = -1
	if at := c.lastData.Load(); at != 0 {
		out[StatLastDataMillis] = time.Since(time.Unix(0, at)).Milliseconds()
	}
	return out
}
