package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Option is one option of a Client as the C API (the JSON of sws_connect)
// and the Python package name it. The table below is the one place where an
// option's type, range, default and the meaning of None are written:
// Options.validate applies it to a Go caller's Options, ParseOptions to
// JSON, and go generate copies it into the Python package.
type Option struct {
	Name     string
	Kind     Kind
	Min, Max float64 // numbers: the range (seconds or units)
	Default  string  // as Python writes it
	None     string  // what None means, "" if None is refused
	Doc      string
	Internal bool // set by the Python package itself, never by a user

	codec codec
}

// Kind is an option's type, as Python sees it.
type Kind string

// The kinds.
const (
	KindSeconds   Kind = "seconds"   // int or float seconds
	KindInt       Kind = "int"       // an int
	KindBool      Kind = "bool"      // True or False
	KindString    Kind = "str"       // a str; for choices, one of them
	KindStrings   Kind = "list[str]" // a sequence of str
	KindInts      Kind = "list[int]" // a sequence of int
	KindHeaders   Kind = "headers"   // a mapping or (name, value) pairs
	KindBackoff   Kind = "reconnect" // a Backoff, True or False
	KindProxy     Kind = "proxy"     // a URL str, True (the environment) or False
	KindObject    Kind = "object"    // internal: a JSON object
	KindRateLimit Kind = "RateLimit" // a steadyws.RateLimit
)

// maxSeconds keeps durations far from time.Duration overflow.
const maxSeconds = 365 * 24 * 3600

// minIOTimeout is the least open_timeout and write_timeout: 0 would fail
// every dial and every write, so it cannot mean anything. (close_timeout
// 0 means "do not wait for the server's close frame".)
const minIOTimeout = 0.001

// optionTable lists the options in the order the README documents them.
var optionTable = []Option{
	{Name: "headers", Kind: KindHeaders, Default: "None", None: "no extra headers",
		Doc: "extra handshake headers", codec: headersCodec{}},
	{Name: "subprotocols", Kind: KindStrings, Default: "None", None: "none offered",
		Doc:   "subprotocols offered, in order of preference",
		codec: stringsCodec{func(o *Options) *[]string { return &o.Subprotocols }}},
	{Name: "open_timeout", Kind: KindSeconds, Min: minIOTimeout, Max: maxSeconds, Default: "10.0", None: "no limit",
		Doc:   "seconds for TCP connect, TLS and the handshake together",
		codec: secondsCodec{DefaultOpenTimeout, func(o *Options) *time.Duration { return &o.OpenTimeout }}},
	{Name: "close_timeout", Kind: KindSeconds, Max: maxSeconds, Default: "10.0", None: "no limit",
		Doc:   "seconds close() waits for the server's close frame",
		codec: secondsCodec{DefaultCloseTimeout, func(o *Options) *time.Duration { return &o.CloseTimeout }}},
	{Name: "write_timeout", Kind: KindSeconds, Min: minIOTimeout, Max: maxSeconds, Default: "10.0", None: "no limit",
		Doc:   "seconds one frame write may block",
		codec: secondsCodec{DefaultWriteTimeout, func(o *Options) *time.Duration { return &o.WriteTimeout }}},
	{Name: "max_message_size", Kind: KindInt, Min: 1, Max: MaxMessageSizeLimit, Default: "1 << 20",
		Doc:   "largest inbound message in bytes",
		codec: intCodec{DefaultMaxMessageSize, func(o *Options) *int64 { return &o.MaxMessageSize }}},
	{Name: "max_queue", Kind: KindInt, Min: 1, Max: MaxQueueLimit, Default: "1024",
		Doc:   "inbound messages buffered for the consumer",
		codec: intCodec{DefaultMaxQueue, func(o *Options) *int64 { return &o.MaxQueue }}},
	{Name: "max_queue_bytes", Kind: KindInt, Min: 1, Max: MaxQueueBytesLimit, Default: "64 << 20",
		Doc:   "bytes of inbound messages buffered for the consumer",
		codec: intCodec{DefaultMaxQueueBytes, func(o *Options) *int64 { return &o.MaxQueueBytes }}},
	{Name: "overflow", Kind: KindString, Default: `"block"`,
		Doc: "what a full queue does: block, drop_oldest, drop_newest or close", codec: overflowCodec{}},
	{Name: "decode_text", Kind: KindBool, Default: "True",
		Doc:   "text messages as str; False: as bytes (still checked as UTF-8), for parsers that take bytes",
		codec: notCodec{func(o *Options) *bool { return &o.TextAsBytes }}},
	{Name: "busy_poll", Kind: KindSeconds, Max: MaxBusyPoll.Seconds(), Default: "0.0",
		Doc:   "seconds a waiting receive keeps polling the socket before it sleeps: a core for microseconds",
		codec: secondsCodec{0, func(o *Options) *time.Duration { return &o.BusyPoll }}},
	{Name: "max_handshake_size", Kind: KindInt, Min: 1024, Max: MaxHandshakeSizeLimit, Default: "64 << 10",
		Doc:   "largest HTTP response to the opening handshake (or a proxy's) in bytes",
		codec: intCodec{DefaultMaxHandshakeSize, func(o *Options) *int64 { return &o.MaxHandshakeSize }}},
	{Name: "compression", Kind: KindString, Default: "None", None: "off",
		Doc:   `"deflate" offers permessage-deflate for what the server sends`,
		codec: choiceCodec{[]string{"deflate"}, func(o *Options) *string { return &o.Compression }}},
	{Name: "ca_file", Kind: KindString, Default: "None", None: "the system roots",
		Doc: "PEM CA bundle to verify the server with", codec: stringCodec{func(o *Options) *string { return &o.CAFile }}},
	{Name: "cert_file", Kind: KindString, Default: "None", None: "none",
		Doc: "PEM client certificate (mutual TLS)", codec: stringCodec{func(o *Options) *string { return &o.CertFile }}},
	{Name: "key_file", Kind: KindString, Default: "None", None: "none",
		Doc: "PEM key of cert_file", codec: stringCodec{func(o *Options) *string { return &o.KeyFile }}},
	{Name: "server_hostname", Kind: KindString, Default: "None", None: "the URL's host",
		Doc: "name the certificate must match, also sent as SNI", codec: stringCodec{func(o *Options) *string { return &o.ServerName }}},
	{Name: "insecure_skip_verify", Kind: KindBool, Default: "False",
		Doc: "skip certificate verification (tests only; pins still apply)", codec: boolCodec{func(o *Options) *bool { return &o.InsecureSkipVerify }}},
	{Name: "pin_sha256", Kind: KindStrings, Default: "None", None: "no pinning",
		Doc:   "SHA-256 fingerprints of the certificates the server may present",
		codec: stringsCodec{func(o *Options) *[]string { return &o.PinSHA256 }}},
	{Name: "proxy", Kind: KindProxy, Default: "True", None: "a direct connection",
		Doc: "proxy URL, True for HTTP(S)_PROXY and NO_PROXY from the environment", codec: proxyCodec{}},
	{Name: "reconnect", Kind: KindBackoff, Default: "True", None: "off",
		Doc: "the reconnect policy: a Backoff, True for Backoff(), False for off", codec: backoffCodec{}},
	{Name: "fatal_statuses", Kind: KindInts, Default: "(400, 401, 403, 404)",
		Doc: "handshake statuses that end the client instead of a retry", codec: statusesCodec{}},
	{Name: "healthy_after", Kind: KindSeconds, Min: MinHealthyAfter.Seconds(), Max: maxSeconds,
		Default: "max(10.0, 2 * ping_interval)",
		Doc:     "seconds a connection must stay open for the reconnect schedule to restart",
		codec:   secondsCodec{0, func(o *Options) *time.Duration { return &o.HealthyAfter }}},
	{Name: "ping_interval", Kind: KindSeconds, Min: 0.01, Max: maxSeconds, Default: "20.0", None: "no heartbeat",
		Doc:   "seconds between our pings",
		codec: secondsCodec{DefaultPingInterval, func(o *Options) *time.Duration { return &o.PingInterval }}},
	{Name: "ping_timeout", Kind: KindSeconds, Min: 0.01, Max: maxSeconds, Default: "20.0", None: "never declare the server dead",
		Doc:   "seconds after a ping without any frame before the server is declared dead",
		codec: secondsCodec{DefaultPingTimeout, func(o *Options) *time.Duration { return &o.PingTimeout }}},

	{Name: "max_silence", Kind: KindSeconds, Min: 0.01, Max: maxSeconds, Default: "None", None: "off",
		Doc:   "seconds without a data message before the feed is stale: the connection ends (reason stale) and reconnects",
		codec: secondsCodec{0, func(o *Options) *time.Duration { return &o.MaxSilence }}},

	{Name: "max_connection_age", Kind: KindSeconds, Min: 0.05, Max: maxSeconds, Default: "None", None: "never",
		Doc:   "seconds after which a connection is rotated, make-before-break",
		codec: secondsCodec{0, func(o *Options) *time.Duration { return &o.MaxConnectionAge }}},
	{Name: "send_rate", Kind: KindRateLimit, Default: "None", None: "no limit",
		Doc:   "a steadyws.RateLimit that paces send and send_batch (shared by every connection given it)",
		codec: rateLimitCodec{func(o *Options) **RateLimit { return &o.SendRate }}},
	{Name: "connect_rate", Kind: KindRateLimit, Default: "None", None: "no limit",
		Doc:   "a steadyws.RateLimit that paces dial attempts, on top of the backoff schedule",
		codec: rateLimitCodec{func(o *Options) **RateLimit { return &o.ConnectRate }}},

	{Name: "_open_gate", Kind: KindBool, Default: "False", Internal: true,
		Doc: "hold new connections back from senders until on_open returned", codec: boolCodec{func(o *Options) *bool { return &o.OpenGate }}},
	{Name: "_header_requests", Kind: KindBool, Default: "False", Internal: true,
		Doc: "ask for fresh headers before every reconnect attempt", codec: boolCodec{func(o *Options) *bool { return &o.HeaderRequests }}},
	{Name: "_proxy_env", Kind: KindObject, Default: "None", None: "no proxy environment", Internal: true,
		Doc: "HTTP_PROXY, HTTPS_PROXY and NO_PROXY, for proxy=True", codec: proxyEnvCodec{}},
}

// Options returns the option table, for documentation and code generation.
func OptionTable() []Option { return slices.Clone(optionTable) }

// lookupOption finds an option by name.
func lookupOption(name string) (*Option, bool) {
	for i := range optionTable {
		if optionTable[i].Name == name {
			return &optionTable[i], true
		}
	}
	return nil, false
}

// ParseOptions reads sws_connect's JSON config: an object with "url" and
// any options of the table. Every value is type-checked (CodeType) and
// range-checked (CodeInvalidArgument) here, before any I/O.
func ParseOptions(raw []byte) (Options, error) {
	o := Options{fromTable: true}
	fields, err := configFields(raw)
	if err != nil {
		return o, err
	}
	url, ok := fields["url"]
	if !ok {
		return o, wrongType("url", "is required")
	}
	if o.URL, ok = url.string(); !ok {
		return o, wrongType("url", "must be a str, not %s", url.typeName())
	}
	delete(fields, "url")
	return o, decodeOptions(&o, fields)
}

// CheckOptions type-checks and range-checks the options in raw as
// NewClient would, without a client: a whole config (with "url"), or any
// subset of the table without one (the Python package checks a Backoff with
// it when the Backoff is made).
func CheckOptions(raw []byte) error {
	fields, err := configFields(raw)
	if err != nil {
		return err
	}
	if _, ok := fields["url"]; ok {
		o, err := ParseOptions(raw)
		if err == nil {
			_, err = o.validate()
		}
		return err
	}
	var o Options
	if err := decodeOptions(&o, fields); err != nil {
		return err
	}
	for name := range fields {
		opt, _ := lookupOption(name)
		if err := opt.apply(&o); err != nil {
			return err
		}
	}
	return nil
}

func configFields(raw []byte) (map[string]jsonValue, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Op: "config", Err: err}
	}
	out := make(map[string]jsonValue, len(fields))
	for k, v := range fields {
		out[k] = jsonValue{v}
	}
	return out, nil
}

// decodeOptions decodes fields into o in table order, so the first bad
// option reported is the same every time.
func decodeOptions(o *Options, fields map[string]jsonValue) error {
	names := make([]string, 0, len(fields))
	for name := range fields {
		if _, ok := lookupOption(name); !ok {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		return wrongType("options", "unexpected option %q", names[0])
	}
	for i := range optionTable {
		opt := &optionTable[i]
		v, ok := fields[opt.Name]
		if !ok {
			continue
		}
		if v.isNull() {
			if err := opt.none(o); err != nil {
				return err
			}
			continue
		}
		if err := opt.codec.decode(opt, o, v); err != nil {
			return err
		}
	}
	return nil
}

// none applies None to o: what it means, or a refusal.
func (opt *Option) none(o *Options) error {
	if opt.None == "" {
		return wrongType(opt.Name, "must be %s, not None", opt.Kind.article())
	}
	switch c := opt.codec.(type) {
	case secondsCodec:
		*c.field(o) = NoTimeout
	case backoffCodec:
		o.Reconnect, o.reconnectSet = nil, true
	case proxyCodec:
		o.proxyOff = true
	}
	return nil
}

// apply fills in the default and range-checks what o holds.
func (opt *Option) apply(o *Options) error { return opt.codec.apply(opt, o) }

func (k Kind) article() string {
	switch k {
	case KindSeconds:
		return "a number of seconds"
	case KindInt:
		return "an int"
	case KindBool:
		return "a bool"
	case KindString:
		return "a str"
	case KindStrings:
		return "a list of str"
	case KindInts:
		return "a list of int"
	case KindHeaders:
		return "a mapping or (name, value) pairs"
	case KindBackoff:
		return "a Backoff, True or False"
	case KindProxy:
		return "a proxy URL, True or False"
	case KindRateLimit:
		return "a steadyws.RateLimit or None"
	}
	return "an object"
}

func (opt *Option) wrong(v jsonValue) error {
	return wrongType(opt.Name, "must be %s, not %s", opt.Kind.article(), v.typeName())
}

// codec decodes one kind of option and applies its rules.
type codec interface {
	decode(opt *Option, o *Options, v jsonValue) error
	apply(opt *Option, o *Options) error
}

// secondsCodec: int or float seconds, finite, in [Min, Max]; 0 means "at
// once" (the shortest duration), None what the table says. def 0: the
// default is computed elsewhere.
type secondsCodec struct {
	def   time.Duration
	field func(*Options) *time.Duration
}

func (c secondsCodec) decode(opt *Option, o *Options, v jsonValue) error {
	f, ok := v.number()
	switch {
	case !ok:
		return opt.wrong(v)
	case math.IsNaN(f) || math.IsInf(f, 0):
		return invalidArg(opt.Name, "must be a finite number of seconds%s, got %v", opt.noneHint(), f)
	case f < opt.Min || f > opt.Max:
		return invalidArg(opt.Name, "must be between %v and %v seconds, got %v", opt.Min, opt.Max, f)
	}
	*c.field(o) = max(time.Duration(f*float64(time.Second)), 1) // 0: at once
	return nil
}

func (opt *Option) noneHint() string {
	if opt.None != "" {
		return " (None: " + opt.None + ")"
	}
	return ""
}

func (c secondsCodec) apply(opt *Option, o *Options) error {
	d := c.field(o)
	switch {
	case *d == 0:
		*d = c.def
	case *d == NoTimeout:
		if opt.None == "" {
			return invalidArg(opt.Name, "cannot be turned off")
		}
		*d = 0 // off
	case *d < 0:
		return invalidArg(opt.Name, "must not be negative, got %v", *d)
	case *d > 1 && (d.Seconds() < opt.Min || d.Seconds() > opt.Max):
		return invalidArg(opt.Name, "must be between %v and %v seconds, got %v", opt.Min, opt.Max, d.Seconds())
	case *d == 1 && opt.Min > 0:
		return invalidArg(opt.Name, "must be at least %v seconds, got 0", opt.Min)
	}
	return nil
}

// intCodec: an int in [Min, Max].
type intCodec struct {
	def   int64
	field func(*Options) *int64
}

func (c intCodec) decode(opt *Option, o *Options, v jsonValue) error {
	n, ok, inRange := v.integer()
	switch {
	case !ok:
		return opt.wrong(v)
	case !inRange || float64(n) < opt.Min || float64(n) > opt.Max:
		return invalidArg(opt.Name, "must be between %d and %d, got %s", int64(opt.Min), int64(opt.Max), bytes.TrimSpace(v.raw))
	}
	*c.field(o) = n
	return nil
}

func (c intCodec) apply(opt *Option, o *Options) error {
	n := c.field(o)
	switch {
	case *n == 0:
		*n = c.def
	case float64(*n) < opt.Min || float64(*n) > opt.Max:
		return invalidArg(opt.Name, "must be between %d and %d, got %d", int64(opt.Min), int64(opt.Max), *n)
	}
	return nil
}

type boolCodec struct{ field func(*Options) *bool }

func (c boolCodec) decode(opt *Option, o *Options, v jsonValue) error {
	b, ok := v.bool()
	if !ok {
		return opt.wrong(v)
	}
	*c.field(o) = b
	return nil
}

func (boolCodec) apply(*Option, *Options) error { return nil }

// ResolveRateLimit finds the RateLimit a handle stands for; the C API
// installs it (its handle table is the one lookup), Go callers set
// Options.SendRate and ConnectRate directly.
var ResolveRateLimit = func(int64) (*RateLimit, bool) { return nil, false }

// rateLimitCodec reads {"$ratelimit": handle}, as the Python package
// writes a RateLimit.
type rateLimitCodec struct{ field func(*Options) **RateLimit }

func (c rateLimitCodec) decode(opt *Option, o *Options, v jsonValue) error {
	fields, ok := v.object()
	h, isNum := fields["$ratelimit"].number()
	if !ok || !isNum || len(fields) != 1 {
		return opt.wrong(v)
	}
	r, found := ResolveRateLimit(int64(h))
	if !found {
		return invalidArg(opt.Name, "is not a live steadyws.RateLimit")
	}
	*c.field(o) = r
	return nil
}

func (rateLimitCodec) apply(*Option, *Options) error { return nil }

// notCodec is a bool option stored negated, so that its default (True)
// is the zero value of Options.
type notCodec struct{ field func(*Options) *bool }

func (c notCodec) decode(opt *Option, o *Options, v jsonValue) error {
	b, ok := v.bool()
	if !ok {
		return opt.wrong(v)
	}
	*c.field(o) = !b
	return nil
}

func (notCodec) apply(*Option, *Options) error { return nil }

type stringCodec struct{ field func(*Options) *string }

func (c stringCodec) decode(opt *Option, o *Options, v jsonValue) error {
	s, ok := v.string()
	if !ok {
		return opt.wrong(v)
	}
	if strings.ContainsRune(s, 0) {
		return invalidArg(opt.Name, "must not contain NUL")
	}
	*c.field(o) = s
	return nil
}

func (stringCodec) apply(*Option, *Options) error { return nil }

// choiceCodec: one of choices, or "" (None).
type choiceCodec struct {
	choices []string
	field   func(*Options) *string
}

func (c choiceCodec) decode(opt *Option, o *Options, v jsonValue) error {
	s, ok := v.string()
	if !ok {
		return opt.wrong(v)
	}
	*c.field(o) = s
	return c.apply(opt, o)
}

func (c choiceCodec) apply(opt *Option, o *Options) error {
	if s := *c.field(o); s != "" && !slices.Contains(c.choices, s) {
		return invalidArg(opt.Name, "must be None or one of %s, got %q", strings.Join(quoted(c.choices), ", "), s)
	}
	return nil
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

type overflowCodec struct{}

func (overflowCodec) decode(opt *Option, o *Options, v jsonValue) error {
	s, ok := v.string()
	if !ok {
		return opt.wrong(v)
	}
	p, err := ParseOverflow(s)
	o.Overflow = p
	return err
}

func (overflowCodec) apply(opt *Option, o *Options) error {
	if o.Overflow < OverflowBlock || o.Overflow > OverflowClose {
		return invalidArg(opt.Name, "unknown policy %d", int(o.Overflow))
	}
	return nil
}

type stringsCodec struct{ field func(*Options) *[]string }

func (c stringsCodec) decode(opt *Option, o *Options, v jsonValue) error {
	items, ok := v.list()
	if !ok {
		return opt.wrong(v)
	}
	out := make([]string, len(items))
	for i, item := range items {
		if out[i], ok = item.string(); !ok {
			return wrongType(opt.Name, "must be a list of str; item %d is %s", i, item.typeName())
		}
	}
	*c.field(o) = out
	return nil
}

func (stringsCodec) apply(*Option, *Options) error { return nil }

type statusesCodec struct{}

func (statusesCodec) decode(opt *Option, o *Options, v jsonValue) error {
	items, ok := v.list()
	if !ok {
		return opt.wrong(v)
	}
	o.FatalStatuses = make([]int, 0, len(items))
	for i, item := range items {
		n, ok, _ := item.integer()
		if !ok {
			return wrongType(opt.Name, "must be a list of int; item %d is %s", i, item.typeName())
		}
		o.FatalStatuses = append(o.FatalStatuses, int(n))
	}
	return statusesCodec{}.apply(opt, o)
}

func (statusesCodec) apply(opt *Option, o *Options) error {
	for _, s := range o.FatalStatuses {
		if s < 100 || s > 599 {
			return invalidArg(opt.Name, "%d is not an HTTP status", s)
		}
	}
	return nil
}

// headersCodec: a list of (name, value) pairs or a mapping; names and
// values are checked by checkHeader.
type headersCodec struct{}

func (headersCodec) decode(opt *Option, o *Options, v jsonValue) error {
	pairs, err := pairsOf(v)
	if err != nil {
		return err
	}
	h, err := headerOf(pairs)
	o.Header = h
	return err
}

// pairsOf reads headers: (name, value) pairs or a mapping, all str.
func pairsOf(v jsonValue) ([][2]string, error) {
	items, ok := v.items()
	if !ok {
		if items, ok = v.list(); !ok {
			return nil, wrongType("headers", "must be a mapping or (name, value) pairs, not %s", v.typeName())
		}
	}
	pairs := make([][2]string, len(items))
	for i, item := range items {
		kv, ok := item.list()
		if !ok || len(kv) != 2 {
			return nil, wrongType("headers", "must be a mapping or (name, value) pairs; item %d is %s", i, item.typeName())
		}
		for j := range kv {
			if pairs[i][j], ok = kv[j].string(); !ok {
				return nil, wrongType("headers", "names and values must be str, not %s", kv[j].typeName())
			}
		}
	}
	return pairs, nil
}

// ParseHeaderPairs reads headers as the C API passes them (JSON, as the
// headers option) and checks them.
func ParseHeaderPairs(raw []byte) ([][2]string, error) {
	pairs, err := pairsOf(jsonValue{raw})
	if err != nil {
		return nil, err
	}
	_, err = headerOf(pairs)
	return pairs, err
}

// ParseBackoff reads a reconnect policy as the C API passes it: JSON
// {min, max, factor, jitter, max_attempts}, times in seconds.
func ParseBackoff(raw []byte) (Backoff, error) {
	v := jsonValue{raw}
	fields, ok := v.object()
	if !ok {
		return Backoff{}, wrongType("reconnect", "must be a Backoff, not %s", v.typeName())
	}
	return decodeBackoff(fields)
}

func (headersCodec) apply(*Option, *Options) error { return nil }

// backoffCodec: true (the default Backoff, with jitter), false (off), or an
// object {min, max, factor, jitter, max_attempts} with seconds.
type backoffCodec struct{}

// DefaultBackoff is reconnect=True's policy.
var DefaultBackoff = Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Factor: 2, Jitter: true}

func (backoffCodec) decode(opt *Option, o *Options, v jsonValue) error {
	o.reconnectSet = true
	if b, ok := v.bool(); ok {
		o.Reconnect = nil
		if b {
			def := DefaultBackoff
			o.Reconnect = &def
		}
		return nil
	}
	fields, ok := v.object()
	if !ok {
		return opt.wrong(v)
	}
	b, err := decodeBackoff(fields)
	if err != nil {
		return err
	}
	o.Reconnect = &b
	return nil
}

// decodeBackoff reads a Backoff's fields, type by type.
func decodeBackoff(fields map[string]jsonValue) (Backoff, error) {
	b := DefaultBackoff
	for name, v := range fields {
		var ok bool
		switch name {
		case "min", "max", "factor":
			var f float64
			if f, ok = v.number(); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				return b, invalidArg("reconnect", "%s must be finite, got %v", name, f)
			}
			switch name {
			case "min":
				b.Min = time.Duration(f * float64(time.Second))
			case "max":
				b.Max = time.Duration(min(f, maxSeconds) * float64(time.Second))
			default:
				b.Factor = f
			}
		case "jitter":
			b.Jitter, ok = v.bool()
		case "max_attempts":
			var n int64
			var inRange bool
			if ok = v.isNull(); ok {
				b.MaxAttempts = 0
			} else if n, ok, inRange = v.integer(); ok && (!inRange || n < 1 || n > 1<<30) {
				return b, invalidArg("reconnect", "max_attempts must be None or between 1 and %d, got %d", 1<<30, n)
			}
			if !v.isNull() {
				b.MaxAttempts = int(n)
			}
		default:
			return b, wrongType("reconnect", "unexpected field %q", name)
		}
		if !ok {
			return b, wrongType("reconnect", "%s must be %s, not %s", name, backoffKinds[name], v.typeName())
		}
	}
	return b, b.validate()
}

var backoffKinds = map[string]string{
	"min": "a number of seconds", "max": "a number of seconds", "factor": "a number",
	"jitter": "a bool", "max_attempts": "an int or None",
}

func (backoffCodec) apply(_ *Option, o *Options) error {
	if o.Reconnect == nil {
		if !o.reconnectSet && o.fromTable {
			def := DefaultBackoff
			o.Reconnect = &def
		}
		return nil
	}
	b := o.Reconnect.withDefaults()
	if err := b.validate(); err != nil {
		return err
	}
	o.Reconnect = &b
	return nil
}

// proxyCodec: a URL (checked by resolveProxy), true (the environment, which
// the Python package passes as _proxy_env), or false (none).
type proxyCodec struct{}

func (proxyCodec) decode(opt *Option, o *Options, v jsonValue) error {
	if b, ok := v.bool(); ok {
		o.proxyOff = !b
		return nil
	}
	s, ok := v.string()
	if !ok {
		return opt.wrong(v)
	}
	o.Proxy = s
	return nil
}

func (proxyCodec) apply(*Option, *Options) error { return nil }

type proxyEnvCodec struct{}

func (proxyEnvCodec) decode(opt *Option, o *Options, v jsonValue) error {
	fields, ok := v.object()
	if !ok {
		return opt.wrong(v)
	}
	env := &ProxyEnv{}
	for name, fv := range fields {
		s, ok := fv.string()
		if !ok {
			return wrongType(opt.Name, "%s must be a str", name)
		}
		switch name {
		case "http_proxy":
			env.HTTPProxy = s
		case "https_proxy":
			env.HTTPSProxy = s
		case "no_proxy":
			env.NoProxy = s
		default:
			return wrongType(opt.Name, "unexpected field %q", name)
		}
	}
	o.ProxyEnv = env
	return nil
}

func (proxyEnvCodec) apply(*Option, *Options) error { return nil }

// Describe is a one-line summary of an option, for messages and docs.
func (opt Option) Describe() string {
	s := fmt.Sprintf("%s (%s, default %s)", opt.Name, opt.Kind, opt.Default)
	if opt.None != "" {
		s += "; None: " + opt.None
	}
	return s
}
