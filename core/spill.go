package core

// spiller is a socket that can take writes without blocking, keeping what
// the kernel does not take at once for a later drain (see conn.writeNoWait).
// Only the holder of the connection's write lock touches it.
type spiller interface {
	spilling(on bool) // while on, writes never wait
	spilled() bool    // bytes are waiting for drain
	drain() error     // write them, waiting for the socket
}
