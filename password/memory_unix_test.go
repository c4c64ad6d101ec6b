//go:build unix

package password

import (
	"context"
	"runtime"
	"testing"
)

// TestSlotMemoryOutsideHeap checks that a slot's working memory is not on
// the Go heap, where it would raise the collector's goal (newSlotMemory).
func TestSlotMemoryOutsideHeap(t *testing.T) {
	p := Params{Memory: 16 << 10, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32} // 16 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := NewHasher(p, 1)
	if _, err := h.Hash(context.Background(), "pw"); err != nil {
		t.Fatalf("Hash: %v", err)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(h)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("the heap grew by %d bytes over the first hash with 16 MiB of working memory; want the slot's memory outside the heap", grew)
	}
}
