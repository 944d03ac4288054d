package core

import "time"

// pollFDs off Unix: there are no descriptors to wait on (a Windows port
// would wait on an event handle with WaitForMultipleObjects; see
// "Platforms" in the README), so the caller's loop looks again after a
// millisecond. The library is not built for Windows; this keeps the
// engine compiling and vetted there.
func pollFDs(_ []int, d time.Duration) {
	time.Sleep(min(d, time.Millisecond))
}
