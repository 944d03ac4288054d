package core

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// stalledServer accepts one WebSocket client (TLS if tlsConf is set),
// completes the handshake and then never reads: the client's socket fills.
func stalledServer(t *testing.T, tlsConf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if tlsConf != nil {
			c = tls.Server(c, tlsConf)
		}
		if _, err := (ws.Upgrader{}).Upgrade(c); err != nil {
			return
		}
		<-done
	}()
	scheme := "ws://"
	if tlsConf != nil {
		scheme = "wss://"
	}
	return scheme + ln.Addr().String() + "/"
}

// selfSigned is a throwaway certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// fillNoWait sends with SendNoWait until the socket takes no more: a
// drain goroutine then holds the write lock.
func fillNoWait(t *testing.T, c *Client) {
	t.Helper()
	big := make([]byte, 256<<10)
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		start := time.Now()
		err := c.Send(big, SendNoWait, 0)
		if took := time.Since(start); took > 200*time.Millisecond {
			t.Fatalf("a SendNoWait blocked for %v", took)
		}
		if CodeOf(err) == CodeWouldBlock {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the socket never filled")
}

// TestSendNoWaitThenAbortOverTLS: a drain over TLS and the connection's end
// at once race on nothing (the race detector watches), and the end does
// not wait behind the full socket (TLS's close_notify waited 5 s).
func TestSendNoWaitThenAbortOverTLS(t *testing.T) {
	url := stalledServer(t, selfSigned(t))
	c := open(t, Options{URL: url, InsecureSkipVerify: true, WriteTimeout: NoTimeout})
	mustOpen(t, c)
	fillNoWait(t, c)
	start := time.Now()
	if !c.Abort(waitLong) {
		t.Fatal("abort did not finish")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("abort took %v", took)
	}
}

// TestCloseTimeoutHoldsBehindAStalledWrite: Close ends the connection within
// close_timeout even while a write that will never finish (write_timeout
// off) holds the write lock.
func TestCloseTimeoutHoldsBehindAStalledWrite(t *testing.T) {
	url := stalledServer(t, nil)
	c := open(t, Options{URL: url, WriteTimeout: NoTimeout, CloseTimeout: 300 * time.Millisecond})
	mustOpen(t, c)
	fillNoWait(t, c)
	start := time.Now()
	_ = c.Close(CloseNormal, "")
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("close did not finish")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("close took %v, close_timeout is 300 ms", took)
	}
}

// TestSendNoWaitNeverBlocks: against a server that stopped reading, no
// SendNoWait call waits; with write_timeout the drain ends the connection,
// and a send then learns it at once.
func TestSendNoWaitNeverBlocks(t *testing.T) {
	url := stalledServer(t, nil)
	c := open(t, Options{URL: url, WriteTimeout: 300 * time.Millisecond})
	mustOpen(t, c)
	fillNoWait(t, c)
	ev := nextOf(t, c, EventClosed)
	if ev.End.Err != CodeTimeout || !strings.Contains(ev.End.Detail, "write") {
		t.Fatalf("end %+v", ev.End)
	}
	if err := c.Send([]byte("x"), SendNoWait, 0); CodeOf(err) != CodeClosed {
		t.Fatalf("send after the end: %v", err)
	}
}
