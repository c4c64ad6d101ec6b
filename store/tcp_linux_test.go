//go:build linux

package store_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/lib/pq"
	"golang.org/x/sys/unix"

	"github.com/useremail/useremail/store"
)

// TestPostgresDialerSocketOptions: the connections of the store's dialer
// have TCP keepalive and TCP_USER_TIMEOUT, so that a server that goes
// silent ends a query with an error instead of hanging it.
func TestPostgresDialerSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()

	d := store.PostgresDialer()
	dc, ok := d.(pq.DialerContext)
	if !ok {
		t.Fatal("the dialer does not take a context")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, dial := range map[string]func() (net.Conn, error){
		"Dial":        func() (net.Conn, error) { return d.Dial("tcp", ln.Addr().String()) },
		"DialTimeout": func() (net.Conn, error) { return d.DialTimeout("tcp", ln.Addr().String(), 5*time.Second) },
		"DialContext": func() (net.Conn, error) { return dc.DialContext(ctx, "tcp", ln.Addr().String()) },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			raw, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]struct {
				level, opt, value int
			}{
				"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
				"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
				"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
				"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 15000},
			}
			for opt, w := range want {
				var got int
				var gerr error
				if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), w.level, w.opt) }); err != nil {
					t.Fatal(err)
				}
				if gerr != nil || got != w.value {
					t.Errorf("%s = %d (%v), want %d", opt, got, gerr, w.value)
				}
			}
		})
	}
}
