package storetest

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// BlackHole is a TCP proxy in front of PostgreSQL that can swallow: it then
// keeps every connection open, accepts new ones, and drops the bytes both
// ways, as a stuck PgBouncer, HAProxy or sidecar does. Connections that
// lived through it carry on when it lets bytes through again, less what it
// dropped.
type BlackHole struct {
	t        testing.TB
	ln       net.Listener
	upstream string
	holing   atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // nil once closed
}

// StartBlackHole starts a proxy to the server of the postgres:// URL
// databaseURL, letting bytes through; it closes when t ends.
func StartBlackHole(t testing.TB, databaseURL string) *BlackHole {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &BlackHole{t: t, ln: ln, upstream: u.Host, conns: map[net.Conn]struct{}{}}
	go b.serve()
	t.Cleanup(b.close)
	return b
}

// URL returns databaseURL with the proxy in place of its server.
func (b *BlackHole) URL(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		b.t.Fatal(err)
	}
	u.Host = b.ln.Addr().String()
	return u.String()
}

// Swallow turns the swallowing on or off.
func (b *BlackHole) Swallow(on bool) { b.holing.Store(on) }

func (b *BlackHole) serve() {
	for {
		client, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.pipe(client)
	}
}

func (b *BlackHole) pipe(client net.Conn) {
	server, err := net.Dial("tcp", b.upstream)
	if err != nil {
		client.Close()
		return
	}
	if !b.track(client, server) {
		return
	}
	go b.copy(server, client)
	b.copy(client, server)
}

// track records the two ends of a proxied connection for close; once the
// proxy is closed it closes them and reports false.
func (b *BlackHole) track(conns ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		b.conns[c] = struct{}{}
	}
	return true
}

// copy moves bytes from src to dst, or drops them while the proxy
// swallows; when either end closes, it closes both.
func (b *BlackHole) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.holing.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *BlackHole) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
	b.conns = nil
}
