// Package pgcount is a PostgreSQL wire-protocol proxy that counts the
// statements its clients send, for the bench's statement counts and for
// tests that compare what two requests send. It imports only the standard
// library.
package pgcount

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Counter is a PostgreSQL wire-protocol proxy that counts what its
// clients send: every statement executed (simple Query, or Execute of an
// extended-protocol Bind) with its SQL text and one sample of its
// parameters, and the round trips (Query and Sync messages). A server
// pointed at it shows how many statements a request costs, exactly.
type Counter struct {
	ln       net.Listener
	upstream string

	mu         sync.Mutex
	stmts      map[string]*Stat
	roundTrips int
}

// Stat is one statement's count.
type Stat struct {
	SQL    string // white space folded
	Count  int
	Params []*string // a sample, in text form; nil is NULL
}

// New starts a Counter on a port of 127.0.0.1 that forwards to upstream
// (host:port).
func New(upstream string) (*Counter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Counter{ln: ln, upstream: upstream, stmts: map[string]*Stat{}}
	go c.accept()
	return c, nil
}

// Addr is the host:port to connect to instead of upstream.
func (c *Counter) Addr() string { return c.ln.Addr().String() }

// Close stops accepting connections; those open stay until their ends close.
func (c *Counter) Close() { c.ln.Close() }

// Reset starts a new count.
func (c *Counter) Reset() {
	c.mu.Lock()
	c.stmts = map[string]*Stat{}
	c.roundTrips = 0
	c.mu.Unlock()
}

// Snapshot returns the statements counted since Reset, most frequent first,
// and the round trips.
func (c *Counter) Snapshot() ([]Stat, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Stat, 0, len(c.stmts))
	for _, s := range c.stmts {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].SQL < out[j].SQL
	})
	return out, c.roundTrips
}

func (c *Counter) accept() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.serve(conn)
	}
}

var spaces = regexp.MustCompile(`\s+`)

func (c *Counter) count(sql string, params []*string, roundTrip bool) {
	sql = strings.TrimSpace(spaces.ReplaceAllString(sql, " "))
	c.mu.Lock()
	defer c.mu.Unlock()
	if roundTrip {
		c.roundTrips++
	}
	if sql == "" {
		return
	}
	s := c.stmts[sql]
	if s == nil {
		s = &Stat{SQL: sql, Params: params}
		c.stmts[sql] = s
	}
	s.Count++
}

func (c *Counter) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", c.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { _, _ = io.Copy(client, server); client.Close() }()

	r := bufio.NewReader(client)
	w := server
	// Startup: length-prefixed messages without a type byte, until the
	// StartupMessage itself (an SSLRequest or GSSENCRequest comes first).
	for {
		msg, err := readN(r, 4)
		if err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(msg))
		if n < 8 || n > 1<<20 {
			return
		}
		body, err := readN(r, n-4)
		if err != nil {
			return
		}
		if _, err := w.Write(append(msg, body...)); err != nil {
			return
		}
		code := binary.BigEndian.Uint32(body)
		if code != 80877103 && code != 80877104 { // SSLRequest, GSSENCRequest
			break
		}
	}
	statements := map[string]string{} // prepared statement name -> SQL
	portals := map[string]string{}    // portal name -> statement name
	var bound []*string
	for {
		head, err := readN(r, 5)
		if err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:]))
		if n < 4 || n > 64<<20 {
			return
		}
		body, err := readN(r, n-4)
		if err != nil {
			return
		}
		switch head[0] {
		case 'Q':
			c.count(cstring(body, 0), nil, true)
		case 'P':
			name := cstring(body, 0)
			statements[name] = cstring(body, len(name)+1)
		case 'B':
			portal := cstring(body, 0)
			stmt := cstring(body, len(portal)+1)
			portals[portal] = stmt
			bound, _ = parseBind(body[len(portal)+len(stmt)+2:])
		case 'E':
			c.count(statements[portals[cstring(body, 0)]], bound, false)
		case 'S':
			c.count("", nil, true)
		}
		if _, err := w.Write(append(head, body...)); err != nil {
			return
		}
	}
}

func readN(r *bufio.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// cstring returns the NUL-terminated string at b[i:].
func cstring(b []byte, i int) string {
	if i >= len(b) {
		return ""
	}
	end := i
	for end < len(b) && b[end] != 0 {
		end++
	}
	return string(b[i:end])
}

var errShort = errors.New("short bind message")

// parseBind reads the parameter values of a Bind message after its two
// names. Values sent in binary format (lib/pq, with binary_parameters, sends
// []byte so: bytea) are given in bytea's text form, \x and hex, as lib/pq
// would have sent them without it.
func parseBind(b []byte) ([]*string, error) {
	u16 := func() (int, error) {
		if len(b) < 2 {
			return 0, errShort
		}
		v := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		return v, nil
	}
	nf, err := u16()
	if err != nil {
		return nil, err
	}
	formats := make([]int, nf)
	for i := range formats {
		if formats[i], err = u16(); err != nil {
			return nil, err
		}
	}
	np, err := u16()
	if err != nil {
		return nil, err
	}
	out := make([]*string, 0, np)
	for i := range np {
		if len(b) < 4 {
			return nil, errShort
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l < 0 {
			out = append(out, nil)
			continue
		}
		if len(b) < l {
			return nil, errShort
		}
		v := string(b[:l])
		// One format code applies to all parameters, or one per parameter.
		if (nf == 1 && formats[0] == 1) || (nf > 1 && i < nf && formats[i] == 1) {
			v = `\x` + hex.EncodeToString(b[:l])
		}
		out = append(out, &v)
		b = b[l:]
	}
	return out, nil
}
