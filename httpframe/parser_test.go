package httpframe

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Request heads and bodies the cases are made of.
const (
	get     = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	getNext = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
	getLast = "GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
)

func post(headers, body string) string {
	return "POST /users/ HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n" + body
}

func withLength(body string) string {
	return post(fmt.Sprintf("Content-Length: %d\r\n", len(body)), body)
}

func chunked(body string) string { return post("Transfer-Encoding: chunked\r\n", body) }

var parserCases = []struct {
	name  string
	in    string
	heads int    // request heads accepted
	fault *Error // nil: the whole stream is sound
}{
	{"get", get, 1, nil},
	{"pipelined gets", get + getNext + get, 3, nil},
	{"body then get", withLength(`{"email":"a@example.com"}`) + getNext, 2, nil},
	{"body holding a request", withLength(getNext) + get, 2, nil},
	{"empty lines before a request", "\r\n\r\n" + get, 1, nil},
	{"http/1.0", "GET / HTTP/1.0\r\n\r\n", 1, nil},
	{"content-length zero", post("Content-Length: 0\r\n", "") + get, 2, nil},
	{"content-length with white space", post("content-length: \t3 \r\n", "abc") + get, 2, nil},
	{"content-length leading zeros", post("Content-Length: 003\r\n", "abc") + get, 2, nil},
	{"content-length largest", post("Content-Length: 9223372036854775807\r\n", "abc"), 1, nil},
	{"chunked", chunked("5\r\nhello\r\n0\r\n\r\n") + getNext, 2, nil},
	{"chunked upper case", post("TRANSFER-ENCODING:  Chunked \r\n", "A\r\n0123456789\r\n0\r\n\r\n") + get, 2, nil},
	{"chunk extensions", chunked("5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n") + get, 2, nil},
	{"chunk size white space", chunked("5 \t\r\nhello\r\n0\r\n\r\n") + get, 2, nil},
	{"chunk size 16 digits", chunked("0000000000000005\r\nhello\r\n0\r\n\r\n") + get, 2, nil},
	{"trailers", chunked("5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: two words\r\n\r\n") + get, 2, nil},
	{"chunk holding a request", chunked(fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(getNext), getNext)) + get, 2, nil},
	{"names like framing fields", post("X-Content-Length: 5\r\nContent-Lengths: 5\r\nTransfer-Encodings: gzip\r\nTransfer-Encoding-X: gzip\r\n", "") + get, 2, nil},
	{"obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", 1, nil},
	{"long head", "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 100000) + "\r\n\r\n" + get, 2, nil},

	{"content-length and transfer-encoding", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") + getNext, 0, errCLAndTE},
	{"transfer-encoding and content-length", post("Transfer-Encoding: chunked\r\nContent-Length: 6\r\n", "0\r\n\r\n") + getNext, 0, errCLAndTE},
	{"content-length and gzip", post("Content-Length: 6\r\nTransfer-Encoding: gzip\r\n", "0\r\n\r\n"), 0, errCLAndTE},
	{"after a sound request", get + post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") + getNext, 1, errCLAndTE},
	{"gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 0, errTE},
	{"two transfer-encodings", post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 0, errTE},
	{"chunked twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 0, errTE},
	{"chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 0, errTE},
	{"identity", post("Transfer-Encoding: identity\r\n", ""), 0, errTE},
	{"chunked prefix", post("Transfer-Encoding: chunk\r\n", ""), 0, errTE},
	{"empty transfer-encoding", post("Transfer-Encoding:\r\n", ""), 0, errTE},
	{"transfer-encoding on http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, errTEOld},
	{"two content-lengths", post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"), 0, errManyCL},
	{"content-length list", post("Content-Length: 3, 3\r\n", "abc"), 0, errCL},
	{"content-length empty", post("Content-Length: \r\n", ""), 0, errCL},
	{"content-length signed", post("Content-Length: +3\r\n", "abc"), 0, errCL},
	{"content-length negative", post("Content-Length: -1\r\n", ""), 0, errCL},
	{"content-length hex", post("Content-Length: 0x3\r\n", "abc"), 0, errCL},
	{"content-length two words", post("Content-Length: 3 3\r\n", "abc"), 0, errCL},
	{"content-length overflow", post("Content-Length: 9223372036854775808\r\n", ""), 0, errCL},
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 0, errBareLF},
	{"bare LF header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 0, errBareLF},
	{"bare LF end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 0, errBareLF},
	{"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 0, errBareLF},
	{"bare LF after a sound request", get + "GET / HTTP/1.1\nHost: a\n\n", 1, errBareLF},
	{"bare LF before a request", "\n" + get, 0, errBareLF},
	{"bare CR", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 0, errBareCR},
	{"CR CR LF", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 0, errBareCR},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0, errFold},
	{"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 0, errFold},
	{"obs-fold hiding transfer-encoding", post("Content-Length: 5\r\nX: a\r\n Transfer-Encoding: chunked\r\n", "hello"), 0, errFold},
	{"white space before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, errFold},
	{"space before colon", post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 0, errFieldLine},
	{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 0, errFieldLine},
	{"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 0, errFieldLine},
	{"name not a token", "GET / HTTP/1.1\r\nX(y): a\r\n\r\n", 0, errFieldLine},
	{"NUL in a value", "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 0, errControl},
	{"DEL in a value", "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", 0, errControl},
	{"http/2 request line", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, errRequestLine},
	{"no version", "GET /\r\n\r\n", 0, errRequestLine},
	{"lower-case version", "GET / http/1.1\r\n\r\n", 0, errRequestLine},
	{"two spaces", "GET  / HTTP/1.1\r\n\r\n", 0, errRequestLine},
	{"space in target", "GET /a b HTTP/1.1\r\n\r\n", 0, errRequestLine},
	{"trailing space", "GET / HTTP/1.1 \r\n\r\n", 0, errRequestLine},
	{"tab separator", "GET\t/ HTTP/1.1\r\n\r\n", 0, errRequestLine},
	{"method not a token", "G(T / HTTP/1.1\r\n\r\n", 0, errRequestLine},
	{"version too long", "GET / HTTP/1.11\r\n\r\n", 0, errRequestLine},

	{"chunk size not hex", chunked("zz\r\n") + get, 1, errChunkSize},
	{"chunk size empty", chunked("\r\n") + get, 1, errChunkSize},
	{"chunk size 17 digits", chunked("00000000000000005\r\nhello\r\n0\r\n\r\n"), 1, errChunkSize},
	{"chunk size negative", chunked("-5\r\nhello\r\n0\r\n\r\n"), 1, errChunkSize},
	{"space before extension", chunked("5 ;a\r\nhello\r\n0\r\n\r\n"), 1, errChunkSize},
	{"space inside the size", chunked("5 5\r\nhello\r\n0\r\n\r\n"), 1, errChunkSize},
	{"control in an extension", chunked("5;a\x00\r\nhello\r\n0\r\n\r\n"), 1, errChunkSize},
	{"bare LF after the size", chunked("5\nhello\r\n0\r\n\r\n"), 1, errBareLF},
	{"chunk longer than its size", chunked("5\r\nhello!\r\n0\r\n\r\n"), 1, errChunkEnd},
	{"bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n"), 1, errBareLF},
	{"bare LF ending the trailers", chunked("5\r\nhello\r\n0\r\n\n") + get, 1, errBareLF},
	{"obs-fold in a trailer", chunked("0\r\nX: a\r\n b\r\n\r\n"), 1, errFold},
	{"trailer without colon", chunked("0\r\nX\r\n\r\n"), 1, errFieldLine},
}

func TestParser(t *testing.T) {
	for _, tc := range parserCases {
		t.Run(tc.name, func(t *testing.T) {
			var p parser
			sound, fault := p.feed([]byte(tc.in))
			if fault != tc.fault {
				t.Fatalf("fault = %v, want %v", fault, tc.fault)
			}
			if p.heads != tc.heads {
				t.Errorf("heads = %d, want %d", p.heads, tc.heads)
			}
			if fault == nil && sound != len(tc.in) {
				t.Errorf("sound = %d of %d bytes with no fault", sound, len(tc.in))
			}
			if fault != nil && sound >= len(tc.in) {
				t.Errorf("sound = %d of %d bytes with a fault", sound, len(tc.in))
			}
			if fault != nil && fault.Field == "body" && p.inHead() {
				t.Errorf("a body fault while in a head")
			}

			// The same stream a byte at a time: the same verdict at the same byte.
			var q parser
			at, byteFault := len(tc.in), (*Error)(nil)
			for i := range len(tc.in) {
				if n, f := q.feed([]byte{tc.in[i]}); f != nil {
					if n != 0 {
						t.Fatalf("a fault on one byte after %d sound ones", n)
					}
					at, byteFault = i, f
					break
				}
			}
			if byteFault != fault || at != sound || q.heads != p.heads {
				t.Errorf("byte by byte: fault %v at %d, %d heads; at once: fault %v at %d, %d heads", byteFault, at, q.heads, fault, sound, p.heads)
			}
		})
	}
}

// FuzzParser checks that the parser's verdict does not depend on how the
// stream is cut into reads, and that wherever it lets a request through,
// net/http's own server-side reading of the same bytes either refuses it
// (and so closes the connection) or ends it at the same byte: the two never
// disagree on where the next request starts.
func FuzzParser(f *testing.F) {
	for _, tc := range parserCases {
		if len(tc.in) < 4096 {
			f.Add([]byte(tc.in), uint8(7))
		}
	}
	f.Add([]byte(withLength("abc")+get+chunked("3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n")+getNext), uint8(1))
	f.Add([]byte(post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n")+get), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nX: "+strings.Repeat("v", 3000)+"\r\n\r\n"+get), uint8(200))
	f.Add([]byte(withLength("ab")+"\r\n"+get), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		var whole parser
		sound, fault := whole.feed(in)

		var parts parser
		partSound, partFault := 0, (*Error)(nil)
		for rest, size := in, int(cut)+1; len(rest) > 0 && partFault == nil; {
			n := min(size, len(rest))
			var k int
			k, partFault = parts.feed(rest[:n])
			partSound += k
			rest = rest[n:]
			size = size%13 + 1
		}
		if partFault != fault || partSound != sound || parts.heads != whole.heads {
			t.Fatalf("cut into reads: fault %v after %d bytes, %d heads; at once: fault %v after %d, %d heads", partFault, partSound, parts.heads, fault, sound, whole.heads)
		}

		if fault != nil && fault.Detail == "" {
			t.Fatalf("a fault without a detail")
		}

		ends := messageEnds(in[:sound])
		cr := &countingReader{r: bytes.NewReader(in[:sound])}
		br := bufio.NewReader(cr)
		lastMethod := ""
		for i, end := range ends {
			if lastMethod == "POST" {
				peek, _ := br.Peek(4)
				br.Discard(numLeadingCRorLF(peek))
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				return // net/http refuses it and closes the connection
			}
			lastMethod = req.Method
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return // net/http closes the connection after a broken body
			}
			if at := cr.n - br.Buffered(); at != end {
				t.Fatalf("request %d: the parser ends it after byte %d, net/http after byte %d\n%q", i, end, at, in[:sound])
			}
		}
	})
}

// messageEnds returns the offsets at which the parser ends each complete
// request (head and body) of in.
func messageEnds(in []byte) []int {
	var p parser
	var ends []int
	for i := range in {
		heads, was := p.heads, p.phase
		if _, f := p.feed(in[i : i+1]); f != nil {
			break
		}
		if p.phase == phRequestLine && (p.heads != heads || was != phRequestLine) {
			ends = append(ends, i+1)
		}
	}
	return ends
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// numLeadingCRorLF is net/http's own tolerance, in its server loop, for CR
// and LF bytes after a POST's body.
func numLeadingCRorLF(v []byte) (n int) {
	for _, b := range v {
		if b != '\r' && b != '\n' {
			break
		}
		n++
	}
	return n
}
