package password

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/crypto/argon2"
)

// argonCase is one set of inputs for deriveID and argon2.IDKey.
type argonCase struct {
	password, salt []byte
	time, memory   uint32
	lanes          uint8
	keyLen         uint32
}

func (c argonCase) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d,key=%d,pw=%d,salt=%d",
		c.memory, c.time, c.lanes, c.keyLen, len(c.password), len(c.salt))
}

// argonCases returns fixed edge cases and then n random ones from a fixed
// seed, with memory up to maxMemory KiB.
func argonCases(n int, maxMemory uint32) []argonCase {
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	pw, salt := []byte("password"), []byte("somesalt")
	cases := []argonCase{
		// The least memory allowed, exactly and just above (not a
		// multiple of 4*lanes, so rounded down).
		{pw, salt, 1, 8, 1, 32},
		{pw, salt, 1, 11, 1, 32},
		{pw, salt, 2, 16, 2, 32},
		{pw, salt, 2, 23, 2, 32},
		{pw, salt, 3, 40, 5, 32},
		// Under the least: raised to 8 blocks per lane.
		{pw, salt, 1, 1, 1, 32},
		{pw, salt, 1, 9, 2, 32},
		// Key lengths around H''s 32- and 64-byte steps.
		{pw, salt, 1, 64, 1, 4},
		{pw, salt, 1, 64, 1, 63},
		{pw, salt, 1, 64, 1, 64},
		{pw, salt, 1, 64, 1, 65},
		{pw, salt, 1, 64, 1, 96},
		{pw, salt, 1, 64, 1, 97},
		{pw, salt, 1, 64, 1, 128},
		{pw, salt, 1, 64, 1, 200},
		// Empty password and salt.
		{nil, nil, 1, 64, 1, 32},
		{nil, salt, 2, 64, 2, 32},
		// Segments over 128 blocks (more than one address block per
		// segment in the data-independent slices).
		{pw, salt, 2, 1024, 1, 32},
		{pw, salt, 1, 2052, 4, 32},
	}
	for range n {
		lanes := uint8(1 + rng.IntN(5))
		least := 8 * uint32(lanes)
		// Mostly small memory, to keep the test quick, some large.
		top := min(maxMemory, 400)
		if rng.IntN(5) == 0 {
			top = maxMemory
		}
		cases = append(cases, argonCase{
			password: randBytes(rng.IntN(101)),
			salt:     randBytes(rng.IntN(101)),
			time:     uint32(1 + rng.IntN(4)),
			memory:   least + uint32(rng.IntN(int(top-least)+1)),
			lanes:    lanes,
			keyLen:   uint32(4 + rng.IntN(197)),
		})
	}
	return cases
}

// TestDeriveIDMatchesXCrypto checks deriveID against golang.org/x/crypto's
// argon2.IDKey, with fresh memory, with one buffer reused across all cases
// (so full of another derivation's blocks), and with too small a buffer.
func TestDeriveIDMatchesXCrypto(t *testing.T) {
	n, maxMemory := 220, uint32(3000)
	if testing.Short() {
		n, maxMemory = 60, 256
	}
	shared := make([]block, 0, 4096) // more than any case needs
	for _, c := range argonCases(n, maxMemory) {
		want := argon2.IDKey(c.password, c.salt, c.time, c.memory, c.lanes, c.keyLen)
		got := deriveID(nil, c.password, c.salt, nil, nil, c.time, c.memory, c.lanes, c.keyLen)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: deriveID(nil mem) = %x, want %x", c, got, want)
			continue
		}

		// The shared buffer grows to the biggest case so far, so smaller
		// cases use a prefix that earlier cases have filled.
		m := int(memoryBlocks(c.memory, c.lanes))
		if len(shared) < m {
			shared = shared[:m]
		}
		got = deriveID(shared, c.password, c.salt, nil, nil, c.time, c.memory, c.lanes, c.keyLen)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: deriveID(reused mem of %d blocks) = %x, want %x", c, len(shared), got, want)
		}

		small := make([]block, m-1)
		got = deriveID(small, c.password, c.salt, nil, nil, c.time, c.memory, c.lanes, c.keyLen)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: deriveID(mem of %d blocks) = %x, want %x", c, m-1, got, want)
		}
		if small[0] != (block{}) {
			t.Errorf("%v: deriveID wrote into a buffer too small to use", c)
		}
	}
}

// TestRFC9106Vector is the Argon2id test vector of RFC 9106 §5.3, the only
// one here with a secret and associated data (argon2.IDKey takes neither).
func TestRFC9106Vector(t *testing.T) {
	password := bytes.Repeat([]byte{0x01}, 32)
	salt := bytes.Repeat([]byte{0x02}, 16)
	secret := bytes.Repeat([]byte{0x03}, 8)
	data := bytes.Repeat([]byte{0x04}, 12)
	want, _ := hex.DecodeString("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659")
	for _, mem := range [][]block{nil, make([]block, 32), make([]block, 100)} {
		for i := range mem {
			mem[i][i%128] = ^uint64(i) // stale contents
		}
		got := deriveID(mem, password, salt, secret, data, 3, 32, 4, 32)
		if !bytes.Equal(got, want) {
			t.Errorf("deriveID(mem of %d blocks) = %x, want %x", len(mem), got, want)
		}
	}
}

func TestDeriveIDPanicsOnZero(t *testing.T) {
	for _, tc := range []struct {
		time  uint32
		lanes uint8
	}{{0, 1}, {1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("deriveID(t=%d, p=%d) did not panic", tc.time, tc.lanes)
				}
			}()
			deriveID(nil, nil, nil, nil, nil, tc.time, 64, tc.lanes, 32)
		}()
	}
}

// TestHasherReusesMemory checks that a Hasher's slot keeps its working
// memory: after the first hash, a Verify with 19 MiB parameters allocates
// next to nothing.
func TestHasherReusesMemory(t *testing.T) {
	p := DefaultParams
	if testing.Short() {
		p.Memory = 4096
	}
	h := NewHasher(p, 1)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "pw") // allocates the slot's memory
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	const runs = 3
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if ok, _, err := h.Verify(ctx, "pw", enc); err != nil || !ok {
			t.Fatalf("Verify = %v, %v; want true, nil", ok, err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("m=%d KiB: %d bytes allocated per Verify", p.Memory, perCall)
	if perCall >= 1<<20 {
		t.Errorf("Verify allocates %d bytes per call, want < 1 MiB (memory %d KiB not reused?)", perCall, p.Memory)
	}

	mem := <-h.slots
	if want := int(memoryBlocks(p.Memory, p.Parallelism)); len(mem) != want {
		t.Errorf("slot memory is %d blocks, want %d", len(mem), want)
	}
	h.slots <- mem
}

// TestHasherOtherMemory checks stored hashes that need more memory than
// the Hasher's slot holds (derived in memory of their own, which the slot
// does not keep) and less (derived in the slot memory's start).
func TestHasherOtherMemory(t *testing.T) {
	ctx := context.Background()
	small := Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	big := Params{Memory: 1000, Iterations: 2, Parallelism: 3, SaltLen: 16, KeyLen: 32}
	mid := Params{Memory: 256, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32}
	h := NewHasher(mid, 1)
	if _, err := h.Hash(ctx, "warm up"); err != nil {
		t.Fatalf("Hash: %v", err)
	}
	for _, p := range []Params{big, small, big, mid} {
		enc := hashWithSalt("pw", []byte("0123456789abcdef"), p)
		ok, rehash, err := h.Verify(ctx, "pw", enc)
		if err != nil || !ok || rehash != (p != mid) {
			t.Fatalf("Verify(%q) = %v, %v, %v; want true, %v, nil", enc, ok, rehash, err, p != mid)
		}
		ok, _, err = h.Verify(ctx, "pW", enc)
		if err != nil || ok {
			t.Fatalf("Verify(wrong, %q) = %v, %v; want false, nil", enc, ok, err)
		}
		mem := <-h.slots
		if want := int(memoryBlocks(mid.Memory, mid.Parallelism)); len(mem) != want {
			t.Fatalf("after m=%d: slot memory is %d blocks, want %d", p.Memory, len(mem), want)
		}
		h.slots <- mem
	}
}

// A stored hash with the old default p=1 keeps verifying and asks for a
// rehash.
func TestOldParallelismVerifies(t *testing.T) {
	old := Params{Memory: 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	cur := old
	cur.Parallelism = 2
	enc := hashWithSalt("pw", []byte("0123456789abcdef"), old)
	ok, rehash, err := NewHasher(cur, 1).Verify(context.Background(), "pw", enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify(p=1 hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

// BenchmarkDerive compares deriveID, in reused memory, with
// golang.org/x/crypto's argon2.IDKey, which allocates its memory per call,
// at the default memory and passes.
func BenchmarkDerive(b *testing.B) {
	password, salt := []byte("correct horse battery staple"), []byte("0123456789abcdef")
	p := DefaultParams
	for _, lanes := range []uint8{1, 2} {
		b.Run(fmt.Sprintf("p=%d/ours", lanes), func(b *testing.B) {
			mem := make([]block, memoryBlocks(p.Memory, lanes))
			b.ReportAllocs()
			for b.Loop() {
				deriveID(mem, password, salt, nil, nil, p.Iterations, p.Memory, lanes, p.KeyLen)
			}
		})
		b.Run(fmt.Sprintf("p=%d/x-crypto", lanes), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				argon2.IDKey(password, salt, p.Iterations, p.Memory, lanes, p.KeyLen)
			}
		})
	}
}

// BenchmarkCompress measures G alone, on blocks that stay in the cache.
func BenchmarkCompress(b *testing.B) {
	var out, x, y block
	for i := range x {
		x[i], y[i] = uint64(i)*0x9e3779b97f4a7c15, ^uint64(i)
	}
	b.SetBytes(blockBytes)
	for b.Loop() {
		compress(&out, &x, &y, true)
	}
}
