//go:build !linux

package core

import "net"

// noSigPipe is a no-op off Linux, where SO_NOSIGPIPE would be the
// equivalent (issue: portable source). The library is built for Linux.
func noSigPipe(c net.Conn) (net.Conn, error) { return c, nil }

// spillerOf: no non-blocking writes off Linux; writeNoWait blocks.
func spillerOf(net.Conn) spiller { return nil }

// fastSocketOf: no fast path off Linux; the reader goroutine reads.
func fastSocketOf(net.Conn) fastSocket { return nil }
