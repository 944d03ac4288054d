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
	MaxHandshakeSize   int64       `json:"max_handshake_size"`
	CAFile             string      `json:"ca_file"`
	CertFile           string      `json:"cert_file"`
	KeyFile            string      `json:"key_file"`
	ServerHostname     string      `json:"server_hostname"`
	InsecureSkipVerify bool        `json:"insecure_skip_verify"`
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
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return core.Options{}, &core.Error{Code: core.CodeInvalidArgument, Op: "config", Err: err}
	}
	o := core.Options{
		URL: c.URL, Subprotocols: c.Subprotocols,
		MaxMessageSize: c.MaxMessageSize, MaxQueue: c.MaxQueue, MaxHandshakeSize: c.MaxHandshakeSize,
		CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
		ServerName: c.ServerHostname, InsecureSkipVerify: c.InsecureSkipVerify,
	}
	if len(c.Headers) > 0 {
		o.Header = http.Header{}
		for _, kv := range c.Headers {
			o.Header.Add(kv[0], kv[1])
		}
	}
	var err error
	for _, t := range []struct {
		name string
		src  seconds
		dst  *time.Duration
	}{
		{"open_timeout", c.OpenTimeout, &o.OpenTimeout},
		{"close_timeout", c.CloseTimeout, &o.CloseTimeout},
		{"write_timeout", c.WriteTimeout, &o.WriteTimeout},
	} {
		if *t.dst, err = t.src.duration(t.name); err != nil {
			return core.Options{}, err
		}
	}
	return o, nil
}
