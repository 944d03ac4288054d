package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/steadyws/steadyws/core"
)

// config is the JSON object sws_connect takes. Keys are the Python
// parameter names, so an error names the parameter the user wrote.
type config struct {
	URL                string      `json:"url"`
	Headers            [][2]string `json:"headers"`
	Subprotocols       []string    `json:"subprotocols"`
	OpenTimeout        seconds     `json:"open_timeout"`
	CloseTimeout       seconds     `json:"close_timeout"`
	WriteTimeout       seconds     `json:"write_timeout"`
	MaxMessageSize     int64       `json:"max_message_size"`
	MaxQueue           int         `json:"max_queue"`
	MaxQueueBytes      int64       `json:"max_queue_bytes"`
	Overflow           string      `json:"overflow"`
	Compression        *string     `json:"compression"` // null: off
	MaxHandshakeSize   int64       `json:"max_handshake_size"`
	CAFile             string      `json:"ca_file"`
	CertFile           string      `json:"cert_file"`
	KeyFile            string      `json:"key_file"`
	ServerHostname     string      `json:"server_hostname"`
	InsecureSkipVerify bool        `json:"insecure_skip_verify"`
	PinSHA256          []string    `json:"pin_sha256"`
	Proxy              string      `json:"proxy"`
	ProxyEnv           *proxyEnv   `json:"proxy_env"` // null or absent: no proxy from the environment
	Reconnect          *backoff    `json:"reconnect"` // null or absent: off
	FatalStatuses      []int       `json:"fatal_statuses"`
	HealthyAfter       seconds     `json:"healthy_after"`
	PingInterval       seconds     `json:"ping_interval"`
	PingTimeout        seconds     `json:"ping_timeout"`
}

// proxyEnv is the proxy part of the caller's environment.
type proxyEnv struct {
	HTTPProxy  string `json:"http_proxy"`
	HTTPSProxy string `json:"https_proxy"`
	NoProxy    string `json:"no_proxy"`
}

// backoff is the JSON form of core.Backoff; times in seconds.
type backoff struct {
	Min         float64 `json:"min"`
	Max         float64 `json:"max"`
	Factor      float64 `json:"factor"`
	Jitter      bool    `json:"jitter"`
	MaxAttempts int     `json:"max_attempts"`
}

func (b backoff) core() (core.Backoff, error) {
	for name, v := range map[string]float64{"min": b.Min, "max": b.Max} {
		if v < 0 || v > maxSeconds || math.IsNaN(v) {
			return core.Backoff{}, &core.Error{Code: core.CodeInvalidArgument, Op: "reconnect", Err: fmt.Errorf("%s must be in [0, %d] seconds", name, maxSeconds)}
		}
	}
	return core.Backoff{
		Min: secondsToDuration(b.Min), Max: secondsToDuration(b.Max),
		Factor: b.Factor, Jitter: b.Jitter, MaxAttempts: b.MaxAttempts,
	}, nil
}

func secondsToDuration(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// parseBackoff decodes the JSON sws_set_backoff takes.
func parseBackoff(raw []byte) (core.Backoff, error) {
	var b backoff
	if err := strictJSON(raw, &b); err != nil {
		return core.Backoff{}, err
	}
	return b.core()
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &core.Error{Code: core.CodeInvalidArgument, Op: "config", Err: err}
	}
	return nil
}

// parseHeaders decodes [[name, value], ...].
func parseHeaders(raw []byte) (http.Header, error) {
	var pairs [][2]string
	if err := strictJSON(raw, &pairs); err != nil {
		return nil, err
	}
	return toHeader(pairs), nil
}

func toHeader(pairs [][2]string) http.Header {
	if len(pairs) == 0 {
		return nil
	}
	h := http.Header{}
	for _, kv := range pairs {
		h.Add(kv[0], kv[1])
	}
	return h
}

// seconds is a timeout in seconds: absent means the default, null means no
// limit.
type seconds struct {
	set, none bool
	v         float64
}

func (s *seconds) UnmarshalJSON(b []byte) error {
	s.set = true
	if string(b) == "null" {
		s.none = true
		return nil
	}
	return json.Unmarshal(b, &s.v)
}

// maxSeconds keeps durations far from time.Duration overflow.
const maxSeconds = 365 * 24 * 3600

func (s seconds) duration(name string) (time.Duration, error) {
	switch {
	case !s.set:
		return 0, nil
	case s.none:
		return core.NoTimeout, nil
	case s.v <= 0 || s.v > maxSeconds || math.IsNaN(s.v):
		return 0, &core.Error{Code: core.CodeInvalidArgument, Op: name, Err: fmt.Errorf("must be in (0, %d] seconds, got %v", maxSeconds, s.v)}
	}
	return time.Duration(s.v * float64(time.Second)), nil
}

// parseConfig decodes the JSON strictly (unknown keys are errors) and
// converts it to core.Options; core validates the values.
func parseConfig(raw []byte) (core.Options, error) {
	var c config
	if err := strictJSON(raw, &c); err != nil {
		return core.Options{}, err
	}
	o := core.Options{
		URL: c.URL, Subprotocols: c.Subprotocols,
		MaxMessageSize: c.MaxMessageSize, MaxQueue: c.MaxQueue, MaxQueueBytes: c.MaxQueueBytes,
		MaxHandshakeSize: c.MaxHandshakeSize,
		CAFile:           c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
		ServerName: c.ServerHostname, InsecureSkipVerify: c.InsecureSkipVerify, PinSHA256: c.PinSHA256,
		Header: toHeader(c.Headers), FatalStatuses: c.FatalStatuses, Proxy: c.Proxy,
	}
	if e := c.ProxyEnv; e != nil {
		o.ProxyEnv = &core.ProxyEnv{HTTPProxy: e.HTTPProxy, HTTPSProxy: e.HTTPSProxy, NoProxy: e.NoProxy}
	}
	if c.Compression != nil {
		o.Compression = *c.Compression
	}
	var err error
	if c.Overflow != "" {
		if o.Overflow, err = core.ParseOverflow(c.Overflow); err != nil {
			return core.Options{}, err
		}
	}
	if c.Reconnect != nil {
		b, err := c.Reconnect.core()
		if err != nil {
			return core.Options{}, err
		}
		o.Reconnect = &b
	}
	for _, t := range []struct {
		name string
		src  seconds
		dst  *time.Duration
	}{
		{"open_timeout", c.OpenTimeout, &o.OpenTimeout},
		{"close_timeout", c.CloseTimeout, &o.CloseTimeout},
		{"write_timeout", c.WriteTimeout, &o.WriteTimeout},
		{"healthy_after", c.HealthyAfter, &o.HealthyAfter},
		{"ping_interval", c.PingInterval, &o.PingInterval},
		{"ping_timeout", c.PingTimeout, &o.PingTimeout},
	} {
		if *t.dst, err = t.src.duration(t.name); err != nil {
			return core.Options{}, err
		}
	}
	return o, nil
}
