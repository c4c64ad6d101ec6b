//go:build !linux

package store

import "math"

// diskRoom reports room enough and a writable file system: only the
// refused writes tell, outside Linux.
func diskRoom(string) (free uint64, readOnly bool, err error) {
	return math.MaxUint64, false, nil
}
