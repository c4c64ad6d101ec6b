//go:build !linux

package store

import (
	"syscall"
	"time"
)

// setTCPUserTimeout returns nil: TCP_USER_TIMEOUT is Linux's. Elsewhere the
// dialer's keepalive alone finds a connection that went silent while idle.
func setTCPUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
