// Command capi is the C ABI of steadyws, built with
//
//	go build -buildmode=c-shared -o libsteadyws.so ./capi
//
// It is a thin layer of exports over package core: integer handles in one
// table (never Go pointers), one guard that turns panics into error codes,
// and results copied into buffers the caller owns. The generated
// libsteadyws.h documents every function and its return codes.
package main

//go:generate go run ./internal/abigen -src . -header sws_abi.h -python ../python/steadyws/_abi.py

func main() {}
