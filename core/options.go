package core

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults and limits of Options; each field's doc comment repeats its
// own, and the option table (optable.go) is where the C API and Python get
// them.
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
	MaxBusyPoll             = 10 * time.Millisecond // a bound on a poll call, which holds the handle
	// DefaultHealthyAfter is the least default time a connection must stay
	// open to restart the reconnect schedule; see Options.HealthyAfter.
	DefaultHealthyAfter = 10 * time.Second
	// MinHealthyAfter is the least HealthyAfter: a connection that opens
	// and dies at once never restarts the schedule, whatever the option.
	MinHealthyAfter = time.Second

	// MaxMessageSizeLimit bounds max_message_size: messages are buffered whole
	// and their lengths cross the C boundary as 32-bit values.
	MaxMessageSizeLimit = 1 << 30
	// MaxQueueLimit bounds max_queue.
	MaxQueueLimit = 1 << 24
	// MaxQueueBytesLimit bounds max_queue_bytes.
	MaxQueueBytesLimit = 1 << 40
	// MaxHandshakeSizeLimit bounds max_handshake_size.
	MaxHandshakeSizeLimit = 1 << 24
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
	// whatever the peer does. NoTimeout waits for the peer however long it
	// takes. Defaults to 10 s.
	CloseTimeout time.Duration
	// WriteTimeout bounds one frame write; a write that times out kills the
	// connection, since a partial frame cannot be recovered. NoTimeout
	// disables it. Defaults to 10 s.
	WriteTimeout time.Duration

	// MaxMessageSize is the largest inbound message, after reassembly; a
	// larger one closes the connection with 1009. Defaults to 1 MiB.
	MaxMessageSize int64
	// MaxQueue is how many inbound messages may wait for the consumer,
	// counting the batch it took last; while it is full the reader stops
	// reading (TCP backpressure). Defaults to 1024.
	MaxQueue int64
	// MaxQueueBytes bounds the bytes of the messages waiting, counted the
	// same way. Defaults to 64 MiB.
	MaxQueueBytes int64
	// Overflow is what happens to a message when the queue is full.
	// Defaults to OverflowBlock.
	Overflow Overflow
	// MaxHandshakeSize bounds the bytes of the HTTP response to the opening
	// handshake (and a proxy's). Defaults to 64 KiB.
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
	// did not close is lost. Defaults to nil: off. (The C API turns it on.)
	Reconnect *Backoff
	// FatalStatuses are handshake statuses that end the client instead of
	// a retry. Defaults to DefaultFatalStatuses (400, 401, 403, 404).
	FatalStatuses []int
	// HealthyAfter is how long a connection must stay open for the
	// reconnect schedule to restart, at least MinHealthyAfter. Defaults to
	// max(10 s, 2 × PingInterval).
	HealthyAfter time.Duration
	// HeaderRequests makes every reconnect attempt ask the observer for
	// fresh headers (EventHeaders, answered by ProvideHeaders). Defaults to
	// false: Header every time.
	HeaderRequests bool
	// OpenGate holds every new connection back from senders until Ready is
	// called with its number, except for the sends that name it (the
	// on_open of the Python package logs in and subscribes that way).
	// Defaults to false: a connection takes every sender once open.
	OpenGate bool

	// BusyPoll is how long a consumer on the fast path (PollFast) keeps
	// reading the socket before it returns empty-handed: it trades a core
	// for the microseconds of a wake-up. 0, the default, never spins: an
	// idle connection costs no CPU. At most MaxBusyPoll.
	BusyPoll time.Duration

	// MaxSilence ends a connection on which no data message (text or
	// binary) arrived for that long -- "connected, but no data": pings are
	// answered, the venue stopped sending -- so that the reconnect policy
	// runs. Pings and pongs are not data; while the reader waits for room
	// in a full queue (a slow consumer), the silence does not count. 0: off.
	MaxSilence time.Duration

	// MaxConnectionAge rotates a connection once it is that old (see
	// Client.Rotate): before a venue's forced daily disconnect. 0: never.
	MaxConnectionAge time.Duration

	// SendRate paces our outbound messages (and, if it says so, our pings
	// and pongs) through a budget that other clients may share; nil: none.
	SendRate *RateLimit
	// ConnectRate paces dial attempts, on top of the backoff schedule, the
	// same way; nil: none.
	ConnectRate *RateLimit

	// TextAsBytes delivers text messages as EventBinary, after the UTF-8
	// check (the option decode_text=False): a consumer that parses bytes
	// (orjson, msgspec) skips a decode, and the engine skips counting code
	// points.
	TextAsBytes bool

	// PingInterval is the time between our pings. NoTimeout disables the
	// heartbeat. Defaults to 20 s.
	PingInterval time.Duration
	// PingTimeout is how long after a ping the peer may stay silent (no
	// frame at all) before it is declared dead. NoTimeout keeps the pings
	// (they keep NATs and proxies awake) but never declares the peer dead.
	// Defaults to 20 s.
	PingTimeout time.Duration

	// How ParseOptions read the C API's JSON, whose defaults differ from
	// the zero values': reconnect on, and the proxy of the environment.
	fromTable    bool
	reconnectSet bool // "reconnect" was given
	proxyOff     bool // "proxy" was False or None
}

// settings are Options validated and with defaults applied.
type settings struct {
	Options
	url   *url.URL
	tls   *tls.Config
	proxy *url.URL // nil: connect directly
}

// validate checks every option before any I/O, names the bad one, and
// applies the defaults. The option table holds each option's range and
// default; what remains here is what spans options.
func (o Options) validate() (*settings, error) {
	s := &settings{Options: o}
	for i := range optionTable {
		if err := optionTable[i].apply(&s.Options); err != nil {
			return nil, err
		}
	}
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
	if s.HealthyAfter == 0 {
		s.HealthyAfter = max(DefaultHealthyAfter, 2*s.PingInterval)
	}
	if s.FatalStatuses == nil {
		s.FatalStatuses = DefaultFatalStatuses
	}
	if s.proxyOff {
		s.Proxy, s.ProxyEnv = "", nil
	}
	if err := s.resolveProxy(); err != nil {
		return nil, err
	}
	if s.url.Scheme == "wss" {
		if s.tls, err = o.tlsConfig(); err != nil {
			return nil, err
		}
	} else if _, err := parsePins(o.PinSHA256); err != nil {
		return nil, err
	}
	return s, nil
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

// checkHeader refuses names that are not HTTP tokens (RFC 9110 5.1),
// values with control characters (RFC 9110 5.5: only HTAB among them; CR,
// LF or NUL would inject header lines), and the headers of the handshake
// itself (RFC 6455 4.1), which the client writes and a second copy of
// would break.
func checkHeader(h http.Header) error {
	for name, values := range h {
		if !isToken(name) {
			return invalidArg("headers", "invalid header name %q", name)
		}
		if reservedHeader(name) {
			return invalidArg("headers", "%q is part of the WebSocket handshake and set by steadyws", name)
		}
		for _, v := range values {
			if i := strings.IndexFunc(v, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }); i >= 0 {
				return invalidArg("headers", "the value of %q contains the control character %q", name, v[i])
			}
		}
	}
	return nil
}

// reservedHeader: Host, Upgrade, Connection and every Sec-WebSocket-*.
func reservedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "upgrade", "connection", "content-length", "transfer-encoding":
		return true
	}
	return strings.HasPrefix(strings.ToLower(name), "sec-websocket-")
}

// headerOf builds a header from name, value pairs and checks it.
func headerOf(pairs [][2]string) (http.Header, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	h := http.Header{}
	for _, kv := range pairs {
		h.Add(kv[0], kv[1])
	}
	return h, checkHeader(h)
}

// isToken reports an HTTP token (RFC 9110 5.6.2).
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	})
}

// checkSubprotocols requires HTTP tokens (RFC 6455 4.1, item 10).
func checkSubprotocols(protos []string) error {
	for _, p := range protos {
		if !isToken(p) {
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
