package core

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/steadyws/steadyws/core/wstest"
)

// connectProxy is a small HTTP CONNECT proxy (RFC 9110 9.3.6): it checks
// Proxy-Authorization against auth (if set) and tunnels to the requested
// address, or to route[host] for made-up host names.
type connectProxy struct {
	url   string
	mu    sync.Mutex
	seen  []string // "CONNECT target, Proxy-Authorization"
	auth  string
	route map[string]string
}

func newConnectProxy(t *testing.T, auth string, route map[string]string) *connectProxy {
	p := &connectProxy{auth: auth, route: route}
	srv := wstest.NewRaw(t, func(_ int, c net.Conn) { p.serve(c) })
	p.url = "http://" + strings.TrimSuffix(strings.TrimPrefix(srv.URL, "ws://"), "/")
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, req.Method+" "+req.Host+", "+req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	if p.auth != "" && req.Header.Get("Proxy-Authorization") != p.auth {
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
		return
	}
	target := req.Host
	if r, ok := p.route[req.URL.Hostname()]; ok {
		target = r
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { _, _ = io.Copy(up, br); up.Close() }()
	_, _ = io.Copy(c, up)
}

func (p *connectProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func hostPort(wsURL string) string {
	return strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/")
}

func TestProxyConnectTunnelsWithCredentials(t *testing.T) {
	echo := wstest.New(t, wstest.Echo)
	p := newConnectProxy(t, "Basic dXNlcjpwQHNz", map[string]string{"feed.test": hostPort(echo.URL)}) // user:p@ss
	c := open(t, Options{URL: "ws://feed.test:9/", Proxy: strings.Replace(p.url, "http://", "http://user:p%40ss@", 1)})
	mustOpen(t, c)
	if err := c.Send([]byte("through"), SendText, 0); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c); string(ev.Data) != "through" {
		t.Fatalf("got %q", ev.Data)
	}
	if got := p.requests(); len(got) != 1 || got[0] != "CONNECT feed.test:9, Basic dXNlcjpwQHNz" {
		t.Fatalf("proxy saw %q", got)
	}
}

func TestProxyRefusals(t *testing.T) {
	echo := wstest.New(t, wstest.Echo)
	needsAuth := newConnectProxy(t, "Basic secret", nil)
	garbage := wstest.NewRaw(t, func(_ int, c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
	})
	endless := wstest.NewRaw(t, func(_ int, c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		for {
			if _, err := io.WriteString(c, "X-Padding: "+strings.Repeat("x", 1000)+"\r\n"); err != nil {
				return
			}
		}
	})
	early := wstest.NewRaw(t, func(_ int, c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n")
	})
	closed := wstest.NewRaw(t, func(int, net.Conn) {})
	closed.Close()
	for _, tc := range []struct {
		name, proxy string
		code        Code
		status      int
		says        string
	}{
		{"407 without credentials", needsAuth.url, CodeProxy, 407, "refused CONNECT"},
		{"not an HTTP proxy", "http://" + hostPort(garbage.URL), CodeProxy, 0, "malformed HTTP"},
		{"endless response", "http://" + hostPort(endless.URL), CodeProxy, 0, "max_handshake_size"},
		{"data before the handshake", "http://" + hostPort(early.URL), CodeProxy, 0, "data after its CONNECT response"},
		{"proxy port closed", "http://" + hostPort(closed.URL), CodeRefused, 0, "refused"},
		{"socks5 port closed", "socks5://" + hostPort(closed.URL), CodeRefused, 0, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, Options{URL: echo.URL, Proxy: tc.proxy, MaxHandshakeSize: 4096})
			if ev := next(t, c); ev.Kind != EventClosed {
				t.Fatalf("got %v", ev.Kind)
			}
			e := c.Err()
			if e == nil || e.Code != tc.code || e.Status != tc.status || e.Op != "proxy" || !strings.Contains(e.Error(), tc.says) {
				t.Fatalf("got %#v: %v", e, e)
			}
		})
	}
}

// TestProxyAuthRefusalIsFatal: a reconnect refused with 407 will not
// change by retrying; a 502 may.
func TestProxyAuthRefusalIsFatal(t *testing.T) {
	c := &Client{s: &settings{}}
	if !c.fatal(&Error{Code: CodeProxy, Status: 407}) || c.fatal(&Error{Code: CodeProxy, Status: 502}) {
		t.Fatal("407 is fatal, 502 is not")
	}
}

func TestProxyFromEnvironmentRules(t *testing.T) {
	env := &ProxyEnv{HTTPProxy: "http://plain:3128", HTTPSProxy: "socks5h://secure", NoProxy: "internal.example,.corp"}
	for _, tc := range []struct{ url, want string }{
		{"ws://feed.example/", "http://plain:3128"},
		{"wss://feed.example/", "socks5h://secure"},
		{"ws://internal.example/", ""},
		{"wss://api.corp/", ""},
		{"ws://127.0.0.1:9/", ""}, // loopback never goes through an environment proxy
		{"ws://localhost:9/", ""},
	} {
		s, err := Options{URL: tc.url, ProxyEnv: env}.validate()
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if s.proxy != nil {
			got = s.proxy.String()
		}
		if got != tc.want {
			t.Errorf("%s: proxy %q, want %q", tc.url, got, tc.want)
		}
	}
	// An explicit proxy wins, loopback included.
	if s, _ := (Options{URL: "ws://127.0.0.1/", Proxy: "socks5://p:1", ProxyEnv: env}).validate(); s.proxy.String() != "socks5://p:1" {
		t.Fatalf("explicit proxy: %v", s.proxy)
	}
}

func TestProxyOptionIsChecked(t *testing.T) {
	for _, tc := range []struct{ proxy, says string }{
		{"ftp://u:hunter2@p:21", "scheme must be http, socks5 or socks5h"},
		{"http://u:hunter2@:8080", "has no host"},
		{"http://u:hunter2@p:0", "port must be 1-65535"},
		{"http://u:hunter2@p:8080/path", "host[:port] only"},
		{"http://u:hunter2@p\x7f:1", "invalid"},
		{"https://u:hunter2@p:443", "scheme"},
	} {
		_, err := Open(Options{URL: "ws://x/", Proxy: tc.proxy})
		if CodeOf(err) != CodeInvalidArgument || !strings.HasPrefix(err.Error(), "proxy") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v", tc.proxy, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the password is in the error: %v", tc.proxy, err)
		}
	}
	_, err := Open(Options{URL: "ws://feed.example/", ProxyEnv: &ProxyEnv{HTTPProxy: "http://u:hunter2@bad host:1"}})
	if CodeOf(err) != CodeInvalidArgument || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("environment proxy: %v", err)
	}
}
