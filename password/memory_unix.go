//go:build unix

package password

import (
	"runtime"
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
//
// The cost of being outside the heap: the Go runtime does not count this
// memory, so runtime.MemStats and the go_memstats metrics leave it out and
// GOMEMLIMIT does not cover it (budget a slot's Memory KiB per slot on top
// of the limit; docs/DEPLOY.md does). The process's RSS does count it.
//
// On Linux the pages are also left out of core dumps: they hold values
// derived from the passwords being hashed.
func newSlotMemory(n uint32) []block {
	b, err := syscall.Mmap(-1, 0, int(n)*blockBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]block, n)
	}
	if runtime.GOOS == "linux" {
		_ = syscall.Madvise(b, madvDontDump) // best effort: a dump is rare
	}
	return unsafe.Slice((*block)(unsafe.Pointer(&b[0])), n)
}

// madvDontDump is Linux's MADV_DONTDUMP (include/uapi/asm-generic/mman-common.h),
// which package syscall does not define.
const madvDontDump = 0x10

// freeSlotMemory unmaps memory newSlotMemory mapped. Heap memory, from its
// fallback, is left to the collector: syscall.Munmap unmaps only what
// syscall.Mmap mapped (it keeps a table of the mappings) and returns an
// error for anything else, which is ignored.
func freeSlotMemory(mem []block) {
	if len(mem) == 0 {
		return
	}
	_ = syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), len(mem)*blockBytes))
}
