package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// FileLock is the lock file of an SQLite database (LockSQLite), held by one
// process at a time.
type FileLock struct {
	f *os.File // nil: nothing to hold (an in-memory database)
}

// FileInUseError is LockSQLite's answer when another process holds the lock.
type FileInUseError struct {
	LockFile string
	PID      int // as the holder wrote it; 0 if unknown
}

func (e *FileInUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder += fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("store: %s is held by %s", e.LockFile, holder)
}

// LockSQLite takes the lock file beside the SQLite database of rawURL, its
// path with ".lock" added, and writes this process's id into it; it fails
// with a *FileInUseError while another process holds it. The lock is an
// flock(2) lock on the lock file, released by Unlock or when the process
// ends, however it ends. The processes that serve hold it, so that one
// dispatcher owns the file's outbox; the admin commands need not.
//
// Why a file of its own, not a lock on the database: SQLite locks its file
// with POSIX (fcntl) locks, which a process loses on that file as soon as
// it closes any descriptor of it, and which NFS mixes with flock locks.
func LockSQLite(rawURL string) (*FileLock, error) {
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if dialect != SQLite {
		return nil, errors.New("store: LockSQLite needs an sqlite: database URL")
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if strings.HasPrefix(path, ":memory:") {
		return &FileLock{}, nil
	}
	lockFile := path + ".lock"
	f, err := os.OpenFile(lockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	if err := lockFileExclusive(f); err != nil {
		pid := holderPID(f)
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, &FileInUseError{LockFile: lockFile, PID: pid}
		}
		return nil, fmt.Errorf("store: lock %s: %w", lockFile, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: lock %s: %w", lockFile, err)
	}
	return &FileLock{f: f}, nil
}

// holderPID reads the process id the holder of a lock file wrote into it.
func holderPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(bytes.TrimSpace(b)))
	return pid
}

// Unlock releases the lock. The file stays: removing it would let a
// process that opened it before lock a file that no longer has a name.
func (l *FileLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases its flock
	l.f = nil
	return err
}
