//go:build linux

package store

import (
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// setTCPUserTimeout returns a net.Dialer Control function that sets
// TCP_USER_TIMEOUT on TCP sockets: data sent but not acknowledged for d (a
// server or a network that went silent) ends the connection with an error,
// where the kernel would otherwise retransmit for about 15 minutes. It also
// bounds the keepalive probes of an idle connection.
func setTCPUserTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil // a Unix socket has no such option, and needs none
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
		})
		if err != nil {
			return err
		}
		return serr
	}
}
