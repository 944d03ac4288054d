package main

/*
#include "sws_abi.h"
*/
import "C"

import "unsafe"

// cError is sws_error as Go code sees it; test files cannot use cgo.
type cError = C.sws_error

// errText is the message in e.
func errText(e *cError) string { return C.GoString(&e.text[0]) }

// errEnd is the end an SWS_ERR_CLOSED error carries.
func errEnd(e *cError) (code, endCode, status, closedBy int32, reason string) {
	return int32(e.close_code), int32(e.end_code), int32(e.status), int32(e.closed_by), C.GoString(&e.reason[0])
}

func errPtr(e *cError) unsafe.Pointer { return unsafe.Pointer(e) }
