//go:build !linux

package core

import "net"

// noSigPipe is a no-op off Linux: the library is built and shipped for Linux.
func noSigPipe(c net.Conn) (net.Conn, error) { return c, nil }
