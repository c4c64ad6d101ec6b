package password

// This file is an Argon2id implementation (RFC 9106, version 0x13) that
// works in working memory handed in by the caller. Why not
// golang.org/x/crypto/argon2: its IDKey allocates the whole working memory
// (19 MiB at the default parameters) on every call, so a burst of logins
// leaves the heap full of 19 MiB garbage blocks; here each hashing slot of
// a Hasher keeps one buffer and reuses it. The output is byte for byte that
// of argon2.IDKey (argon2_test.go checks it, and the RFC's test vector).
//
// Names follow the RFC where it helps: p lanes, q = m'/p blocks per lane,
// 4 slices per pass (so a lane is cut into 4 segments of q/4 blocks), t
// passes over the memory, G the compression function, H' the
// variable-length hash.

import (
	"encoding/binary"
	"math/bits"
	"sync"

	"golang.org/x/crypto/blake2b"
)

const (
	argonVersion = 0x13 // RFC 9106 version number v (19)
	argonTypeID  = 2    // y: 0 Argon2d, 1 Argon2i, 2 Argon2id
	slices       = 4    // SL, synchronisation points per pass
	blockBytes   = 1024 // a block is 1 KiB
	addrPerBlock = blockBytes / 8
)

// block is one 1 KiB Argon2 memory block as 128 little-endian 64-bit
// words.
type block [128]uint64

// memoryBlocks is m', the number of blocks Argon2 really uses for
// memoryKiB and lanes: memoryKiB rounded down to a multiple of 4*lanes
// (so every lane splits into 4 equal segments), and at least 8 blocks per
// lane (2 per segment).
func memoryBlocks(memoryKiB uint32, lanes uint8) uint32 {
	unit := slices * uint32(lanes)
	m := memoryKiB / unit * unit
	if m < 2*unit {
		m = 2 * unit
	}
	return m
}

// deriveID returns the Argon2id tag of keyLen bytes for password, salt,
// the optional secret key and associated data, with time passes over
// memoryKiB KiB in lanes lanes: the same bytes as argon2.IDKey (which has
// no secret and data). It works in mem when mem holds at least
// memoryBlocks(memoryKiB, lanes) blocks, and in a slice allocated for this
// call otherwise. The previous contents of mem do not matter: the first
// pass overwrites every block before reading it. Like argon2.IDKey it
// panics when time or lanes is 0.
func deriveID(mem []block, password, salt, secret, data []byte, time, memoryKiB uint32, lanes uint8, keyLen uint32) []byte {
	if time < 1 {
		panic("password: argon2 time is 0")
	}
	if lanes < 1 {
		panic("password: argon2 lanes is 0")
	}
	m := memoryBlocks(memoryKiB, lanes)
	if uint32(len(mem)) < m {
		mem = make([]block, m)
	}
	a := &argon{
		mem:     mem[:m],
		passes:  time,
		lanes:   uint32(lanes),
		laneLen: m / uint32(lanes),
		segLen:  m / uint32(lanes) / slices,
	}

	// RFC 9106 §3.2 step 1: H0, a 64-byte digest of every input, with the
	// memory size as the caller gave it (not rounded).
	h0 := initialHash(password, salt, secret, data, time, memoryKiB, uint32(lanes), keyLen)

	// Steps 3 and 4: the first two blocks of each lane,
	// B[i][j] = H'^1024(H0 || LE32(j) || LE32(i)) for j = 0, 1.
	var buf [blockBytes]byte
	for lane := uint32(0); lane < a.lanes; lane++ {
		for j := uint32(0); j < 2; j++ {
			hashPrime(buf[:], h0[:], le32(j), le32(lane))
			a.mem[lane*a.laneLen+j].setBytes(&buf)
		}
	}

	// Steps 5 and 6: every pass fills the lanes slice by slice. Within a
	// slice the lanes are independent (a block only references blocks of
	// other lanes outside the current slice), so they run in parallel and
	// meet at the end of each slice.
	for pass := uint32(0); pass < a.passes; pass++ {
		for slice := uint32(0); slice < slices; slice++ {
			if a.lanes == 1 {
				a.fillSegment(pass, slice, 0)
				continue
			}
			var wg sync.WaitGroup
			for lane := uint32(0); lane < a.lanes; lane++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.fillSegment(pass, slice, lane)
				}()
			}
			wg.Wait()
		}
	}

	// Step 7: C is the XOR of the last block of every lane; step 8: the
	// tag is H'^T(C).
	c := a.mem[a.laneLen-1]
	for lane := uint32(1); lane < a.lanes; lane++ {
		last := &a.mem[lane*a.laneLen+a.laneLen-1]
		for i := range c {
			c[i] ^= last[i]
		}
	}
	c.bytes(&buf)
	tag := make([]byte, keyLen)
	hashPrime(tag, buf[:])
	return tag
}

// argon is the state of one derivation.
type argon struct {
	mem     []block // m' blocks, lane i is mem[i*laneLen : (i+1)*laneLen]
	passes  uint32  // t
	lanes   uint32  // p
	laneLen uint32  // q = m'/p
	segLen  uint32  // q/4
}

// fillSegment computes the blocks of one lane's segment in one slice of
// one pass (RFC 9106 §3.2 steps 5 and 6, §3.4 for the reference block).
func (a *argon) fillSegment(pass, slice, lane uint32) {
	// Argon2id takes the pseudo-random reference values J1, J2
	// independently of the data (from address blocks) in the first half
	// of the first pass, and from the previous block after that.
	dataIndependent := pass == 0 && slice < slices/2

	var input, addr block // §3.4.1.2: the address generator's input and output
	if dataIndependent {
		input[0] = uint64(pass)
		input[1] = uint64(lane)
		input[2] = uint64(slice)
		input[3] = uint64(len(a.mem))
		input[4] = uint64(a.passes)
		input[5] = argonTypeID
		// input[6] is the counter, bumped before every new address block.
	}

	first := uint32(0)
	if pass == 0 && slice == 0 {
		first = 2 // B[i][0] and B[i][1] come from H0
	}
	laneStart := lane * a.laneLen
	cur := laneStart + slice*a.segLen + first // absolute index of the block being computed
	prev := cur - 1
	if slice == 0 && first == 0 {
		prev = laneStart + a.laneLen - 1 // the lane wraps around
	}

	// Where the reference window of a lane starts: in the first pass at
	// the lane's start, later right after the current segment (the oldest
	// block not overwritten in this pass).
	windowStart := uint32(0)
	if pass > 0 && slice < slices-1 {
		windowStart = (slice + 1) * a.segLen
	}

	for i := first; i < a.segLen; i++ {
		var rand uint64
		if dataIndependent {
			if i == first || i%addrPerBlock == 0 {
				// Address block = G(0, G(0, input)), one per 128 blocks.
				input[6]++
				addressBlock(&addr, &input)
			}
			rand = addr[i%addrPerBlock]
		} else {
			rand = a.mem[prev][0]
		}
		j1 := rand & 0xffffffff // picks the block within the window
		j2 := rand >> 32        // picks the lane

		refLane := uint32(j2 % uint64(a.lanes))
		if pass == 0 && slice == 0 {
			refLane = lane // no other lane has finished blocks yet
		}

		// The reference window: every block already computed that is not
		// in the current slice of another lane, except the previous block
		// (which is G's other input anyway).
		var window uint32
		if pass == 0 {
			window = slice * a.segLen // the finished slices
		} else {
			window = a.laneLen - a.segLen // all but the current segment
		}
		if refLane == lane {
			window += i - 1 // this segment's blocks before prev
		} else if i == 0 {
			window-- // the RFC excludes the last block of the window here
		}

		// §3.4.2: map J1 non-uniformly onto the window, favouring recent
		// blocks: x = J1^2 / 2^32, y = window*x / 2^32, z = window-1-y.
		x := j1 * j1 >> 32
		y := uint64(window) * x >> 32
		z := window - 1 - uint32(y)
		ref := refLane*a.laneLen + (windowStart+z)%a.laneLen

		// Version 0x13: the first pass writes G's output, later passes XOR
		// it into the block's previous value.
		compress(&a.mem[cur], &a.mem[prev], &a.mem[ref], pass > 0)
		prev = cur
		cur++
	}
}

// addressBlock sets addr to G(0, G(0, input)) (RFC 9106 §3.4.1.2).
func addressBlock(addr, input *block) {
	var zero block
	compress(addr, &zero, input, false)
	compress(addr, &zero, addr, false)
}

// compress computes G(x, y) = P(R) XOR R with R = x XOR y (RFC 9106 §3.5)
// and stores it in out, or XORs it into out when xor is set. out may be
// the same block as x or y.
//
// P is applied to the 8 rows of 16 words (row i is words 16i..16i+15),
// then to the 8 columns, column i being the word pairs (2i, 2i+1) of every
// row. R is not kept: it goes into out as soon as a row of it is known,
// and P(R) is XORed in at the end.
func compress(out, x, y *block, xor bool) {
	var z block // P(R), computed in place
	for i := 0; i < 8; i++ {
		o := (*[16]uint64)(out[16*i : 16*i+16])
		xi := (*[16]uint64)(x[16*i : 16*i+16])
		yi := (*[16]uint64)(y[16*i : 16*i+16])
		zi := (*[16]uint64)(z[16*i : 16*i+16])
		// Row i of x and y is read before row i of out is written, so
		// out may be x or y.
		if xor {
			for k := range zi {
				r := xi[k] ^ yi[k]
				zi[k] = r
				o[k] ^= r
			}
		} else {
			for k := range zi {
				r := xi[k] ^ yi[k]
				zi[k] = r
				o[k] = r
			}
		}
		permute(zi)
	}
	for i := 0; i < 8; i++ {
		permuteColumn((*[114]uint64)(z[2*i : 2*i+114]))
	}
	for i := range out {
		out[i] ^= z[i]
	}
}

// permute is the permutation P of RFC 9106 §3.6 on 16 words seen as a 4x4
// matrix v0..v15: one BLAKE2b round with GB in place of BLAKE2b's G (and
// no message words), first on the columns (v0,v4,v8,v12), ..., then on the
// diagonals (v0,v5,v10,v15), .... GB(a, b, c, d) is
//
//	a = blamka(a, b); d = (d ^ a) >>> 32
//	c = blamka(c, d); b = (b ^ c) >>> 24
//	a = blamka(a, b); d = (d ^ a) >>> 16
//	c = blamka(c, d); b = (b ^ c) >>> 63
//
// written out by hand: a GB function is too big for the compiler to inline,
// and a call per GB would move the words through memory. Held in local
// variables, they stay in registers as far as the compiler can.
func permute(v *[16]uint64) {
	v0, v1, v2, v3 := v[0], v[1], v[2], v[3]
	v4, v5, v6, v7 := v[4], v[5], v[6], v[7]
	v8, v9, v10, v11 := v[8], v[9], v[10], v[11]
	v12, v13, v14, v15 := v[12], v[13], v[14], v[15]

	// GB(v0, v4, v8, v12)
	v0 = blamka(v0, v4)
	v12 = bits.RotateLeft64(v12^v0, -32)
	v8 = blamka(v8, v12)
	v4 = bits.RotateLeft64(v4^v8, -24)
	v0 = blamka(v0, v4)
	v12 = bits.RotateLeft64(v12^v0, -16)
	v8 = blamka(v8, v12)
	v4 = bits.RotateLeft64(v4^v8, -63)
	// GB(v1, v5, v9, v13)
	v1 = blamka(v1, v5)
	v13 = bits.RotateLeft64(v13^v1, -32)
	v9 = blamka(v9, v13)
	v5 = bits.RotateLeft64(v5^v9, -24)
	v1 = blamka(v1, v5)
	v13 = bits.RotateLeft64(v13^v1, -16)
	v9 = blamka(v9, v13)
	v5 = bits.RotateLeft64(v5^v9, -63)
	// GB(v2, v6, v10, v14)
	v2 = blamka(v2, v6)
	v14 = bits.RotateLeft64(v14^v2, -32)
	v10 = blamka(v10, v14)
	v6 = bits.RotateLeft64(v6^v10, -24)
	v2 = blamka(v2, v6)
	v14 = bits.RotateLeft64(v14^v2, -16)
	v10 = blamka(v10, v14)
	v6 = bits.RotateLeft64(v6^v10, -63)
	// GB(v3, v7, v11, v15)
	v3 = blamka(v3, v7)
	v15 = bits.RotateLeft64(v15^v3, -32)
	v11 = blamka(v11, v15)
	v7 = bits.RotateLeft64(v7^v11, -24)
	v3 = blamka(v3, v7)
	v15 = bits.RotateLeft64(v15^v3, -16)
	v11 = blamka(v11, v15)
	v7 = bits.RotateLeft64(v7^v11, -63)

	// GB(v0, v5, v10, v15)
	v0 = blamka(v0, v5)
	v15 = bits.RotateLeft64(v15^v0, -32)
	v10 = blamka(v10, v15)
	v5 = bits.RotateLeft64(v5^v10, -24)
	v0 = blamka(v0, v5)
	v15 = bits.RotateLeft64(v15^v0, -16)
	v10 = blamka(v10, v15)
	v5 = bits.RotateLeft64(v5^v10, -63)
	// GB(v1, v6, v11, v12)
	v1 = blamka(v1, v6)
	v12 = bits.RotateLeft64(v12^v1, -32)
	v11 = blamka(v11, v12)
	v6 = bits.RotateLeft64(v6^v11, -24)
	v1 = blamka(v1, v6)
	v12 = bits.RotateLeft64(v12^v1, -16)
	v11 = blamka(v11, v12)
	v6 = bits.RotateLeft64(v6^v11, -63)
	// GB(v2, v7, v8, v13)
	v2 = blamka(v2, v7)
	v13 = bits.RotateLeft64(v13^v2, -32)
	v8 = blamka(v8, v13)
	v7 = bits.RotateLeft64(v7^v8, -24)
	v2 = blamka(v2, v7)
	v13 = bits.RotateLeft64(v13^v2, -16)
	v8 = blamka(v8, v13)
	v7 = bits.RotateLeft64(v7^v8, -63)
	// GB(v3, v4, v9, v14)
	v3 = blamka(v3, v4)
	v14 = bits.RotateLeft64(v14^v3, -32)
	v9 = blamka(v9, v14)
	v4 = bits.RotateLeft64(v4^v9, -24)
	v3 = blamka(v3, v4)
	v14 = bits.RotateLeft64(v14^v3, -16)
	v9 = blamka(v9, v14)
	v4 = bits.RotateLeft64(v4^v9, -63)

	v[0], v[1], v[2], v[3] = v0, v1, v2, v3
	v[4], v[5], v[6], v[7] = v4, v5, v6, v7
	v[8], v[9], v[10], v[11] = v8, v9, v10, v11
	v[12], v[13], v[14], v[15] = v12, v13, v14, v15
}

// permuteColumn is permute on column i of a block, the words c[0], c[1],
// c[16], c[17], ..., c[112], c[113] of c = block[2i:], read and written in
// place: the same code as permute with other indices, written out rather
// than gathering the column into an array and scattering it back, which
// costs 32 more loads and stores per column.
func permuteColumn(c *[114]uint64) {
	v0, v1, v2, v3 := c[0], c[1], c[16], c[17]
	v4, v5, v6, v7 := c[32], c[33], c[48], c[49]
	v8, v9, v10, v11 := c[64], c[65], c[80], c[81]
	v12, v13, v14, v15 := c[96], c[97], c[112], c[113]

	// GB(v0, v4, v8, v12)
	v0 = blamka(v0, v4)
	v12 = bits.RotateLeft64(v12^v0, -32)
	v8 = blamka(v8, v12)
	v4 = bits.RotateLeft64(v4^v8, -24)
	v0 = blamka(v0, v4)
	v12 = bits.RotateLeft64(v12^v0, -16)
	v8 = blamka(v8, v12)
	v4 = bits.RotateLeft64(v4^v8, -63)
	// GB(v1, v5, v9, v13)
	v1 = blamka(v1, v5)
	v13 = bits.RotateLeft64(v13^v1, -32)
	v9 = blamka(v9, v13)
	v5 = bits.RotateLeft64(v5^v9, -24)
	v1 = blamka(v1, v5)
	v13 = bits.RotateLeft64(v13^v1, -16)
	v9 = blamka(v9, v13)
	v5 = bits.RotateLeft64(v5^v9, -63)
	// GB(v2, v6, v10, v14)
	v2 = blamka(v2, v6)
	v14 = bits.RotateLeft64(v14^v2, -32)
	v10 = blamka(v10, v14)
	v6 = bits.RotateLeft64(v6^v10, -24)
	v2 = blamka(v2, v6)
	v14 = bits.RotateLeft64(v14^v2, -16)
	v10 = blamka(v10, v14)
	v6 = bits.RotateLeft64(v6^v10, -63)
	// GB(v3, v7, v11, v15)
	v3 = blamka(v3, v7)
	v15 = bits.RotateLeft64(v15^v3, -32)
	v11 = blamka(v11, v15)
	v7 = bits.RotateLeft64(v7^v11, -24)
	v3 = blamka(v3, v7)
	v15 = bits.RotateLeft64(v15^v3, -16)
	v11 = blamka(v11, v15)
	v7 = bits.RotateLeft64(v7^v11, -63)

	// GB(v0, v5, v10, v15)
	v0 = blamka(v0, v5)
	v15 = bits.RotateLeft64(v15^v0, -32)
	v10 = blamka(v10, v15)
	v5 = bits.RotateLeft64(v5^v10, -24)
	v0 = blamka(v0, v5)
	v15 = bits.RotateLeft64(v15^v0, -16)
	v10 = blamka(v10, v15)
	v5 = bits.RotateLeft64(v5^v10, -63)
	// GB(v1, v6, v11, v12)
	v1 = blamka(v1, v6)
	v12 = bits.RotateLeft64(v12^v1, -32)
	v11 = blamka(v11, v12)
	v6 = bits.RotateLeft64(v6^v11, -24)
	v1 = blamka(v1, v6)
	v12 = bits.RotateLeft64(v12^v1, -16)
	v11 = blamka(v11, v12)
	v6 = bits.RotateLeft64(v6^v11, -63)
	// GB(v2, v7, v8, v13)
	v2 = blamka(v2, v7)
	v13 = bits.RotateLeft64(v13^v2, -32)
	v8 = blamka(v8, v13)
	v7 = bits.RotateLeft64(v7^v8, -24)
	v2 = blamka(v2, v7)
	v13 = bits.RotateLeft64(v13^v2, -16)
	v8 = blamka(v8, v13)
	v7 = bits.RotateLeft64(v7^v8, -63)
	// GB(v3, v4, v9, v14)
	v3 = blamka(v3, v4)
	v14 = bits.RotateLeft64(v14^v3, -32)
	v9 = blamka(v9, v14)
	v4 = bits.RotateLeft64(v4^v9, -24)
	v3 = blamka(v3, v4)
	v14 = bits.RotateLeft64(v14^v3, -16)
	v9 = blamka(v9, v14)
	v4 = bits.RotateLeft64(v4^v9, -63)

	c[0], c[1], c[16], c[17] = v0, v1, v2, v3
	c[32], c[33], c[48], c[49] = v4, v5, v6, v7
	c[64], c[65], c[80], c[81] = v8, v9, v10, v11
	c[96], c[97], c[112], c[113] = v12, v13, v14, v15
}

// blamka is the addition of RFC 9106 §3.6's GB, which replaces BLAKE2b's
// a+b with a + b + 2*lo32(a)*lo32(b) (BlaMka): the multiplication makes
// each step cost an attacker's custom hardware about what it costs a CPU.
func blamka(a, b uint64) uint64 {
	return a + b + 2*uint64(uint32(a))*uint64(uint32(b))
}

// initialHash is H0 = H^64(LE32(p) || LE32(T) || LE32(m) || LE32(t) ||
// LE32(v) || LE32(y) || LE32(len(P)) || P || LE32(len(S)) || S ||
// LE32(len(K)) || K || LE32(len(X)) || X) (RFC 9106 §3.2 step 1).
func initialHash(password, salt, secret, data []byte, time, memoryKiB, lanes, keyLen uint32) [blake2b.Size]byte {
	h, _ := blake2b.New512(nil) // fails only for a key over 64 bytes
	for _, n := range []uint32{lanes, keyLen, memoryKiB, time, argonVersion, argonTypeID} {
		h.Write(le32(n))
	}
	for _, s := range [][]byte{password, salt, secret, data} {
		h.Write(le32(uint32(len(s))))
		h.Write(s)
	}
	var h0 [blake2b.Size]byte
	h.Sum(h0[:0])
	return h0
}

// hashPrime fills out with H'^T(in...), T = len(out), the variable-length
// hash of RFC 9106 §3.3 built from BLAKE2b (H^n is BLAKE2b with an n-byte
// digest). Up to 64 bytes it is H^T(LE32(T) || in). Longer, with
// r = ceil(T/32)-2, it chains V1 = H^64(LE32(T) || in), V(i+1) = H^64(V(i))
// up to Vr, and V(r+1) = H^(T-32r)(Vr): the output is the first 32 bytes of
// V1..Vr followed by the whole of V(r+1).
func hashPrime(out []byte, in ...[]byte) {
	t := len(out)
	var v [blake2b.Size]byte
	size := min(t, blake2b.Size)
	h := newBlake2b(size)
	h.Write(le32(uint32(t)))
	for _, b := range in {
		h.Write(b)
	}
	h.Sum(v[:0])
	if t <= blake2b.Size {
		copy(out, v[:t])
		return
	}
	r := (t+31)/32 - 2
	pos := copy(out, v[:32])
	for i := 2; i <= r; i++ {
		v = blake2b.Sum512(v[:])
		pos += copy(out[pos:], v[:32])
	}
	last := newBlake2b(t - 32*r) // 33..64 bytes
	last.Write(v[:])
	var w [blake2b.Size]byte
	copy(out[pos:], last.Sum(w[:0]))
}

// newBlake2b returns unkeyed BLAKE2b with a size-byte digest, 1..64.
func newBlake2b(size int) interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
} {
	h, err := blake2b.New(size, nil)
	if err != nil {
		panic("password: blake2b: " + err.Error()) // size out of 1..64: a bug here
	}
	return h
}

// le32 is the RFC's LE32(n): n as 4 little-endian bytes.
func le32(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }

// setBytes sets b from its 1024-byte little-endian encoding.
func (b *block) setBytes(src *[blockBytes]byte) {
	for i := range b {
		b[i] = binary.LittleEndian.Uint64(src[8*i:])
	}
}

// bytes writes b's 1024-byte little-endian encoding to dst.
func (b *block) bytes(dst *[blockBytes]byte) {
	for i, w := range b {
		binary.LittleEndian.PutUint64(dst[8*i:], w)
	}
}
