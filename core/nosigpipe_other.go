//go:build !linux && !darwin

package core

import "net"

// noSigPipe is a no-op off Linux and macOS (Windows has no SIGPIPE). The
// library is built for Linux; see "Platforms" in the README.
func noSigPipe(c net.Conn) (net.Conn, error) { return c, nil }

// spillerOf: no non-blocking writes off Linux; writeNoWait blocks.
func spillerOf(net.Conn) spiller { return nil }

// fastSocketOf: no fast path off Linux; the reader goroutine reads.
func fastSocketOf(net.Conn) fastSocket { return nil }
