//go:build !unix

package password

// newSlotMemory returns working memory of n blocks for a hashing slot; on
// systems without mmap it comes from the Go heap.
func newSlotMemory(n uint32) []block { return make([]block, n) }

func freeSlotMemory([]block) {}
