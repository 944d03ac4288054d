package core

// Proxies. The opening handshake can go through an HTTP proxy, tunnelled
// by CONNECT (RFC 9110 9.3.6), or a SOCKS5 proxy (RFC 1928, with RFC 1929
// username/password authentication, via golang.org/x/net/proxy). Either
// way the proxy sees the target's host and port, never the WebSocket
// traffic: wss:// stays end-to-end TLS.
//
// The proxy URL may carry credentials; they go to the proxy and nowhere
// else: no error message, log line or stat holds the URL.

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http/httpproxy"
	"golang.org/x/net/proxy"
)

// parseProxy checks a proxy URL: http, socks5 or socks5h, a host, and an
// optional port; what for names where it came from in the error.
func parseProxy(raw, what string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL: it may hold credentials
		}
		return nil, invalidArg("proxy", "%s: %v", what, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "socks5" && u.Scheme != "socks5h":
		return nil, invalidArg("proxy", "%s: scheme must be http, socks5 or socks5h, got %q", what, u.Scheme)
	case u.Hostname() == "":
		return nil, invalidArg("proxy", "%s: has no host", what)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, invalidArg("proxy", "%s: must be scheme://[user:password@]host[:port] only", what)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, invalidArg("proxy", "%s: port must be 1-65535, got %q", what, p)
		}
	}
	return u, nil
}

// resolveProxy picks the proxy for the target: Proxy if set, else what
// ProxyEnv says for the target's scheme (HTTPS_PROXY for wss, HTTP_PROXY
// for ws, NO_PROXY; never for localhost or loopback addresses, as curl and
// Go's net/http do). nil means a direct connection.
func (s *settings) resolveProxy() error {
	if s.Proxy != "" {
		u, err := parseProxy(s.Proxy, "proxy")
		s.proxy = u
		return err
	}
	if s.ProxyEnv == nil {
		return nil
	}
	target := &url.URL{Scheme: "http", Host: s.url.Host}
	if s.url.Scheme == "wss" {
		target.Scheme = "https"
	}
	cfg := *s.ProxyEnv
	u, err := cfg.ProxyFunc()(target)
	if err != nil || u == nil {
		// httpproxy's errors quote the variable's value: keep them out.
		if err != nil {
			return invalidArg("proxy", "the proxy in the environment is not a valid URL")
		}
		return nil
	}
	s.proxy, err = parseProxy(u.String(), "the proxy in the environment")
	return err
}

// ProxyEnv is the proxy part of an environment: HTTP_PROXY, HTTPS_PROXY and
// NO_PROXY, with golang.org/x/net's rules for reading them.
type ProxyEnv = httpproxy.Config

// dialProxy connects to addr, host:port, through the proxy p; *socket gets
// the socket itself, under what the proxy's dialer wraps around it.
func dialProxy(ctx context.Context, p *url.URL, addr string, maxResponse int64, socket *net.Conn) (net.Conn, error) {
	if p.Scheme == "http" {
		c, err := dialConnect(ctx, p, addr, maxResponse)
		*socket = c
		return c, err
	}
	d, err := proxy.FromURL(p, contextDialer{socket})
	if err != nil {
		return nil, proxyError(err)
	}
	c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, proxyError(err)
	}
	return c, nil
}

// contextDialer gives x/net/proxy our socket dialer (see netDial) and
// keeps the socket it made.
type contextDialer struct{ socket *net.Conn }

func (d contextDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d contextDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := netDial(ctx, network, addr)
	*d.socket = c
	return c, err
}

// dialConnect opens a tunnel with HTTP CONNECT (RFC 9110 9.3.6). The
// proxy's response is bounded by maxResponse bytes, like the handshake's.
func dialConnect(ctx context.Context, p *url.URL, addr string, maxResponse int64) (conn net.Conn, err error) {
	host := p.Host
	if p.Port() == "" {
		host = net.JoinHostPort(p.Hostname(), "80")
	}
	c, err := netDial(ctx, "tcp", host)
	if err != nil {
		return nil, proxyError(err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	// Bound the exchange by ctx: its deadline, and cancellation by Close.
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if u := p.User; u != nil {
		pass, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	if err := req.Write(c); err != nil {
		return nil, proxyError(err)
	}
	br := bufio.NewReader(newHandshakeConn(c, maxResponse))
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, proxyError(err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 != 2:
		return nil, &Error{Code: CodeProxy, Op: "proxy", Status: resp.StatusCode,
			Err: fmt.Errorf("the proxy refused CONNECT to %s: %s", addr, resp.Status)}
	case br.Buffered() > 0:
		// The target speaks only after our handshake: bytes here mean
		// a proxy that is not tunnelling.
		return nil, &Error{Code: CodeProxy, Op: "proxy", Err: errors.New("the proxy sent data after its CONNECT response")}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// proxyError wraps a failure on the way through the proxy: a network
// failure keeps its code (refused, DNS, timeout, reset), anything else is
// the proxy's.
func proxyError(err error) *Error {
	code := CodeOf(err)
	if code == CodeNetwork || code == CodeHandshake || code == CodeClosed {
		code = CodeProxy
	}
	return &Error{Code: code, Op: "proxy", Err: err}
}
