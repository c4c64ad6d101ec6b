//go:build linux

package store

import "golang.org/x/sys/unix"

// diskRoom returns the bytes free to unprivileged writers on the file
// system of dir, and whether it is mounted read-only.
func diskRoom(dir string) (free uint64, readOnly bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return st.Bavail * uint64(st.Bsize), st.Flags&unix.ST_RDONLY != 0, nil
}
