package core

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of Options; each field's doc comment repeats its own.
const (
	DefaultOpenTimeout      = 10 * time.Second
	DefaultCloseTimeout     = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxMessageSize   = 1 << 20
	DefaultMaxQueue         = 1024
	DefaultMaxQueueBytes    = 64 << 20
	DefaultMaxHandshakeSize = 64 << 10
	DefaultPingInterval     = 20 * time.Second
	DefaultPingTimeout      = 20 * time.Second
	// MinHealthyAfter is the least time a connection must stay open to
	// restart the reconnect schedule; see Options.HealthyAfter.
	MinHealthyAfter = 10 * time.Second

	// MaxMessageSizeLimit bounds max_message_size: messages are buffered whole
	// and their lengths cross the C boundary as 32-bit values.
	MaxMessageSizeLimit = 1 << 30
	// MaxQueueLimit bounds max_queue.
	MaxQueueLimit = 1 << 24
)

// NoTimeout disables a timeout when given as its value.
const NoTimeout time.Duration = -1

// Options configure a Client. The zero value of a field means its default.
type Options struct {
	// URL is the ws:// or wss:// address to dial. Required.
	URL string
	// Header is sent with the opening handshake. Defaults to none.
	Header http.Header
	// Subprotocols are offered in Sec-WebSocket-Protocol, in order of
	// preference. Defaults to none.
	Subprotocols []string

	// OpenTimeout bounds TCP connect, TLS and the opening handshake together.
	// NoTimeout disables it. Defaults to 10 s.
	OpenTimeout time.Duration
	// CloseTimeout bounds the close handshake: after it, TCP is closed
	// whatever the peer does. Defaults to 10 s.
	CloseTimeout time.Duration
	// WriteTimeout bounds one frame write; a write that times out kills the
	// connection, since a partial frame cannot be recovered. NoTimeout
	// disables it. Defaults to 10 s.
	WriteTimeout time.Duration

	// MaxMessageSize is the largest inbound message, after reassembly; a
	// larger one closes the connection with 1009. Defaults to 1 MiB.
	MaxMessageSize int64
	// MaxQueue is how many inbound messages may wait for the consumer;
	// while it is full the reader stops reading (TCP backpressure).
	// Defaults to 1024.
	MaxQueue int
	// MaxQueueBytes bounds the bytes of the messages waiting. Defaults to
	// 64 MiB.
	MaxQueueBytes int64
	// Overflow is what happens to a message when the queue is full.
	// Defaults to OverflowBlock.
	Overflow Overflow
	// MaxHandshakeSize bounds the bytes of the HTTP response to the opening
	// handshake. Defaults to 64 KiB.
	MaxHandshakeSize int64

	// CAFile is a PEM bundle that replaces the system roots. Defaults to the
	// system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS. Defaults to none.
	CertFile, KeyFile string
	// ServerName overrides the name checked against the server certificate
	// (and sent as SNI). Defaults to the URL's host.
	ServerName string
	// InsecureSkipVerify disables certificate verification. Defaults to
	// false; never set it outside tests. Pins still apply.
	InsecureSkipVerify bool
	// PinSHA256 are SHA-256 fingerprints (hex, colons allowed) of the DER
	// certificates the server may present as its leaf; another is refused
	// even if it chains to a trusted root. Defaults to none: no pinning.
	PinSHA256 []string

	// Compression "deflate" offers permessage-deflate (RFC 7692) for what
	// the server sends. Defaults to "": off, because trading messages are
	// small, so inflating costs more CPU than the bytes saved, and because
	// it is one more thing a hostile server can aim at.
	Compression string

	// Proxy is the proxy to connect through: "http://[user:pass@]host[:port]"
	// (CONNECT; port 80 by default), "socks5://" or "socks5h://" (port
	// 1080 by default; both let the proxy resolve the host). Defaults to
	// "": ProxyEnv decides.
	Proxy string
	// ProxyEnv, when Proxy is empty, picks the proxy from HTTPS_PROXY (wss),
	// HTTP_PROXY (ws) and NO_PROXY, never for localhost or loopback hosts.
	// Defaults to nil: a direct connection. (Python passes its os.environ.)
	ProxyEnv *ProxyEnv

	// Reconnect, if set, makes the client dial again after a connection it
	// did not close is lost. Defaults to nil: off. (Python turns it on.)
	Reconnect *Backoff
	// FatalStatuses are handshake statuses that end the client instead of
	// a retry. Defaults to DefaultFatalStatuses (400, 401, 403, 404).
	FatalStatuses []int
	// HealthyAfter is how long a connection must stay open for the
	// reconnect schedule to restart. Defaults to max(10 s, 2 × PingInterval).
	HealthyAfter time.Duration
	// HeaderFunc, if set, gives the headers of every reconnect attempt
	// (fresh auth signatures). Defaults to nil: Header every time.
	HeaderFunc func() (http.Header, error)

	// PingInterval is the time between our pings. NoTimeout disables the
	// heartbeat. Defaults to 20 s.
	PingInterval time.Duration
	// PingTimeout is how long after a ping the peer may stay silent (no
	// frame at all) before it is declared dead. NoTimeout keeps the pings
	// (they keep NATs and proxies awake) but never declares the peer dead.
	// Defaults to 20 s.
	PingTimeout time.Duration
}

// settings are Options validated and with defaults applied.
type settings struct {
	Options
	url   *url.URL
	tls   *tls.Config
	proxy *url.URL // nil: connect directly
}

func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0 // disabled
	}
	return d
}

// validate checks every option before any I/O and names the bad one.
func (o Options) validate() (*settings, error) {
	s := &settings{Options: o}
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	s.url = u
	if err := checkHeader(o.Header); err != nil {
		return nil, err
	}
	if err := checkSubprotocols(o.Subprotocols); err != nil {
		return nil, err
	}
	for name, d := range map[string]time.Duration{
		"open_timeout": o.OpenTimeout, "close_timeout": o.CloseTimeout, "write_timeout": o.WriteTimeout,
		"ping_interval": o.PingInterval, "ping_timeout": o.PingTimeout, "healthy_after": o.HealthyAfter,
	} {
		if d < 0 && d != NoTimeout {
			return nil, invalidArg(name, "must not be negative, got %v", d)
		}
	}
	s.OpenTimeout = durationOr(o.OpenTimeout, DefaultOpenTimeout)
	s.CloseTimeout = durationOr(o.CloseTimeout, DefaultCloseTimeout)
	s.WriteTimeout = durationOr(o.WriteTimeout, DefaultWriteTimeout)
	if err := s.applyLimits(); err != nil {
		return nil, err
	}
	if err := s.applyReconnect(); err != nil {
		return nil, err
	}
	if o.Compression != "" && o.Compression != "deflate" {
		return nil, invalidArg("compression", `must be "deflate" or empty, got %q`, o.Compression)
	}
	if err := s.resolveProxy(); err != nil {
		return nil, err
	}
	if s.url.Scheme == "wss" {
		if s.tls, err = o.tlsConfig(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *settings) applyLimits() error {
	var err error
	if s.MaxMessageSize, err = limit("max_message_size", s.MaxMessageSize, DefaultMaxMessageSize, MaxMessageSizeLimit); err != nil {
		return err
	}
	var q int64
	if q, err = limit("max_queue", int64(s.MaxQueue), DefaultMaxQueue, MaxQueueLimit); err != nil {
		return err
	}
	s.MaxQueue = int(q)
	if s.MaxQueueBytes, err = limit("max_queue_bytes", s.MaxQueueBytes, DefaultMaxQueueBytes, 1<<40); err != nil {
		return err
	}
	if s.Overflow < OverflowBlock || s.Overflow > OverflowClose {
		return invalidArg("overflow", "unknown policy %d", int(s.Overflow))
	}
	s.MaxHandshakeSize, err = limit("max_handshake_size", s.MaxHandshakeSize, DefaultMaxHandshakeSize, math.MaxInt32)
	return err
}

func (s *settings) applyReconnect() error {
	s.PingInterval = durationOr(s.PingInterval, DefaultPingInterval)
	s.PingTimeout = durationOr(s.PingTimeout, DefaultPingTimeout)
	s.HealthyAfter = durationOr(s.HealthyAfter, max(MinHealthyAfter, 2*s.PingInterval))
	if s.FatalStatuses == nil {
		s.FatalStatuses = DefaultFatalStatuses
	}
	if s.Reconnect != nil {
		b := s.Reconnect.withDefaults()
		if err := b.validate(); err != nil {
			return err
		}
		s.Reconnect = &b
	}
	return nil
}

func limit(name string, v, def, max int64) (int64, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0 || v > max:
		return 0, invalidArg(name, "must be between 1 and %d, got %d", max, v)
	}
	return v, nil
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL itself: it may hold credentials
		}
		return nil, invalidArg("url", "%v", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, invalidArg("url", "scheme must be ws or wss, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, invalidArg("url", "has no host")
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, invalidArg("url", "port must be 1-65535, got %q", p)
		}
	}
	if u.Fragment != "" {
		return nil, invalidArg("url", "must not have a fragment (RFC 6455 3)")
	}
	return u, nil
}

// checkHeader refuses names and values that would let a caller inject
// header lines (CR, LF, NUL) or that are not HTTP tokens.
func checkHeader(h http.Header) error {
	for name, values := range h {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			return invalidArg("headers", "invalid header name %q", name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return invalidArg("headers", "value of %q contains CR, LF or NUL", name)
			}
		}
	}
	return nil
}

// checkSubprotocols requires HTTP tokens (RFC 6455 4.1, item 10).
func checkSubprotocols(protos []string) error {
	for _, p := range protos {
		if p == "" || strings.ContainsFunc(p, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
		}) {
			return invalidArg("subprotocols", "%q is not a valid token", p)
		}
	}
	return nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // explicit opt-in only
	}
	pins, err := parsePins(o.PinSHA256)
	if err != nil {
		return nil, err
	}
	if len(pins) > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return checkPin(pins, cs) }
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, invalidArg("ca_file", "%v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, invalidArg("ca_file", "no PEM certificate in %s", o.CAFile)
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, invalidArg("cert_file", "cert_file and key_file go together")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, invalidArg("cert_file", "%v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// validCloseReason enforces RFC 6455 5.5: a close body is at most 125 bytes,
// 2 of them the code, and the reason is UTF-8.
func validCloseReason(reason string) error {
	if len(reason) > 123 {
		return invalidArg("reason", "must be at most 123 bytes of UTF-8, got %d", len(reason))
	}
	if !utf8.ValidString(reason) {
		return invalidArg("reason", "must be valid UTF-8")
	}
	return nil
}

// errPin is a server certificate that matches none of the pins.
var errPin = errors.New("the server certificate matches no pinned SHA-256 fingerprint")

// parsePins reads SHA-256 fingerprints written in hex, with or without
// colons, in any case.
func parsePins(pins []string) ([][sha256.Size]byte, error) {
	out := make([][sha256.Size]byte, 0, len(pins))
	for _, p := range pins {
		raw, err := hex.DecodeString(strings.ReplaceAll(p, ":", ""))
		if err != nil || len(raw) != sha256.Size {
			return nil, invalidArg("pin_sha256", "%q is not a SHA-256 fingerprint in hex", p)
		}
		out = append(out, [sha256.Size]byte(raw))
	}
	return out, nil
}

// checkPin runs after the chain was verified (or not, with
// InsecureSkipVerify): the leaf must be one of the pinned certificates.
func checkPin(pins [][sha256.Size]byte, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 {
		got := sha256.Sum256(cs.PeerCertificates[0].Raw)
		for _, p := range pins {
			if subtle.ConstantTimeCompare(got[:], p[:]) == 1 {
				return nil
			}
		}
	}
	return &Error{Code: CodeTLS, Op: "tls", Err: errPin}
}
