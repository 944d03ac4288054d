package main

/*
#include <stdint.h>

typedef void (*sws_notify_fn)(int64_t handle, void *user);

// Go cannot call a C function pointer; this trampoline does.
static inline void sws_call_notify(void *fn, int64_t handle, void *user) {
	((sws_notify_fn)fn)(handle, user);
}
*/
import "C"

import "unsafe"

// notifier returns the function the queue calls when events arrive: it
// calls the registered C function with the handle and the user's pointer.
func notifier(fn, user unsafe.Pointer, h int64) func() {
	return func() { C.sws_call_notify(fn, C.int64_t(h), user) }
}
