//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// errWouldBlock is lockFileExclusive's error while another process holds
// the lock.
var errWouldBlock = unix.EWOULDBLOCK

// lockFileExclusive takes an exclusive flock on f without waiting.
func lockFileExclusive(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := conn.Control(func(fd uintptr) { lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		return err
	}
	return lerr
}
