//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package store

import (
	"errors"
	"os"
)

// errWouldBlock is never returned where there is no flock.
var errWouldBlock = errors.New("store: lock file in use")

// lockFileExclusive takes no lock on a system without flock(2): there
// nothing stops a second serve on the same SQLite file.
func lockFileExclusive(*os.File) error { return nil }
