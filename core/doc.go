// Package core is the steadyws connection engine: a WebSocket client (RFC 6455)
// built on github.com/gobwas/ws that never lets a network failure or a panic
// escape as anything but a typed error.
//
// A Client owns one connection at a time. It dials in the background, reads on
// exactly one goroutine per connection, and hands every inbound message and
// lifecycle change to a bounded event queue that a consumer drains in batches
// with Poll. Writes from any goroutine go through one lock per connection.
//
// Every error the engine reports is an *Error carrying a stable Code; the C
// API and the Python package map those codes one to one.
package core
