//go:build unix

package password

import (
	"syscall"
	"unsafe"
)

// newSlotMemory returns working memory of n blocks for a hashing slot,
// mapped straight from the operating system rather than allocated on the
// Go heap. Why: a slot keeps its buffer for the life of its Hasher, and the
// garbage collector sets its next goal as a multiple of the live heap, so
// 19 MiB of pointer-free buffer in the heap would let as much again of
// short-lived garbage pile up between collections (measured: the server's
// peak RSS under logins 64–72 MiB with the buffer in the heap, against its
// 30 MiB at rest). Pages are touched, and so become resident, only by the
// slot's first hash. If the mapping fails, the buffer comes from the heap.
func newSlotMemory(n uint32) []block {
	b, err := syscall.Mmap(-1, 0, int(n)*blockBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]block, n)
	}
	return unsafe.Slice((*block)(unsafe.Pointer(&b[0])), n)
}

// freeSlotMemory unmaps memory newSlotMemory mapped (heap memory, from its
// fallback, is left to the collector: munmap refuses it).
func freeSlotMemory(mem []block) {
	if len(mem) == 0 {
		return
	}
	_ = syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), len(mem)*blockBytes))
}
