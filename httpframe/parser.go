package httpframe

import "strings"

// Error is a request whose framing is refused: where the fault is, in the
// Problem's field notation, and what it is, for people.
type Error struct {
	Field  string
	Detail string
}

func (e *Error) Error() string { return "httpframe: " + e.Detail }

// The refusals. Faults in a request head are answered 400; faults in a body
// fail the reading of that body.
var (
	errBareLF      = &Error{"request", "A line of the request ends in a bare LF; HTTP/1.1 lines end in CRLF."}
	errBareCR      = &Error{"request", "The request has a CR that does not end a line."}
	errControl     = &Error{"request", "A header field of the request has a control character."}
	errRequestLine = &Error{"request", `The request line is not "METHOD target HTTP/1.x".`}
	errFold        = &Error{"request", "A header line starts with white space (obsolete line folding); send each field on one line."}
	errFieldLine   = &Error{"request", `A header line is not "name: value" with a token for a name.`}
	errCLAndTE     = &Error{"header.Transfer-Encoding", "The request has both Content-Length and Transfer-Encoding, so its length is ambiguous; send one of them."}
	errTEOld       = &Error{"header.Transfer-Encoding", "An HTTP/1.0 request cannot use Transfer-Encoding."}
	errTE          = &Error{"header.Transfer-Encoding", "Transfer-Encoding is supported only as one field of the value chunked."}
	errManyCL      = &Error{"header.Content-Length", "The request has more than one Content-Length."}
	errCL          = &Error{"header.Content-Length", "Content-Length is not a decimal number."}
	errChunkSize   = &Error{"body", "A chunk-size line is not a hexadecimal size of at most 16 digits with an optional extension."}
	errChunkEnd    = &Error{"body", "Chunk data is not followed by CRLF."}
)

// phase is where in a request the parser is.
type phase uint8

const (
	phRequestLine phase = iota // the request line, or an empty line before it
	phField                    // a header field line, or the empty line ending the head
	phBody                     // Content-Length bytes of body
	phChunkSize                // a chunk-size line
	phChunkData                // the bytes of a chunk
	phChunkEnd                 // the CRLF after them
	phTrailer                  // a trailer field line, or the empty line ending the body
)

// field is a header field that frames the body.
type field uint8

const (
	fieldOther field = iota
	fieldContentLength
	fieldTransferEncoding
)

// parser follows a stream of HTTP/1.x requests byte by byte, in the grammar
// of RFC 9112 (strictly: CRLF line ends, no obsolete line folding), and knows
// where each head and body ends. It keeps no bytes, only its place. Where
// net/http is stricter (the chunk-size line, one Transfer-Encoding of
// "chunked"), it follows net/http, so that the two never disagree on where
// a request ends.
type parser struct {
	phase phase
	heads int // request heads accepted

	// The line being read.
	col int  // its bytes so far, CR not counted
	cr  bool // the last byte was a CR

	// Request line: method, target, version; where the part began.
	part, partAt int
	http10       bool

	// Field line.
	inValue bool
	name    [len("transfer-encoding")]byte
	nameLen int // len(name)+1 once the name is longer than any framing field
	field   field
	value   valueScan

	// The head so far: how many of each framing field, and their values.
	contentLengths, transferEncodings int
	badCL, badTE                      bool
	contentLength                     uint64

	// Body.
	remain uint64 // bytes of the body or the chunk still to come
	digits int    // of the chunk size read so far
	ext    uint8  // 0: in the size, 1: in white space after it, 2: in an extension
}

// inHead reports whether the request being read has not been handed on yet:
// its head is not complete.
func (p *parser) inHead() bool { return p.phase == phRequestLine || p.phase == phField }

// feed reads b and returns how many of its bytes are sound. On a fault it
// returns the fault and the number of bytes before it; the parser must then
// not be fed again.
func (p *parser) feed(b []byte) (int, *Error) {
	for i := 0; i < len(b); {
		if p.phase == phBody || p.phase == phChunkData {
			k := min(uint64(len(b)-i), p.remain)
			i += int(k)
			p.remain -= k
			switch {
			case p.remain > 0:
			case p.phase == phBody:
				p.phase = phRequestLine
			default:
				p.phase = phChunkEnd
			}
			continue
		}
		if n := p.plainRun(b[i:]); n > 0 {
			i += n
			p.col += n
			continue
		}
		c := b[i]
		var err *Error
		switch {
		case p.cr && c != '\n':
			err = errBareCR
		case p.cr:
			p.cr = false
			err = p.endLine()
		case c == '\r':
			p.cr = true
		case c == '\n':
			err = errBareLF
		default:
			err = p.lineByte(c)
			p.col++
		}
		if err != nil {
			return i, err
		}
		i++
	}
	return len(b), nil
}

// plainRun returns how many bytes at the start of b need no look but one:
// the bytes of a request target, or of the value of a field that does not
// frame the body. Most of a head is such bytes.
func (p *parser) plainRun(b []byte) int {
	var ok *[256]bool
	switch {
	case p.cr:
		return 0
	case p.phase == phRequestLine && p.part == 1:
		ok = &targetByte
	case (p.phase == phField || p.phase == phTrailer) && p.inValue && p.field == fieldOther:
		ok = &valueByte
	default:
		return 0
	}
	n := 0
	for n < len(b) && ok[b[n]] {
		n++
	}
	return n
}

// lineByte reads c, a byte of a line other than CR and LF.
func (p *parser) lineByte(c byte) *Error {
	switch p.phase {
	case phRequestLine:
		return p.requestLineByte(c)
	case phField, phTrailer:
		return p.fieldByte(c)
	case phChunkSize:
		return p.chunkSizeByte(c)
	}
	return errChunkEnd // phChunkEnd: only CRLF may follow chunk data
}

// requestLineByte reads a byte of: method SP request-target SP HTTP/1.DIGIT.
func (p *parser) requestLineByte(c byte) *Error {
	switch p.part {
	case 0:
		if c == ' ' && p.col > 0 {
			p.part, p.partAt = 1, p.col+1
			return nil
		}
		if !isTchar(c) {
			return errRequestLine
		}
	case 1:
		if c == ' ' && p.col > p.partAt {
			p.part, p.partAt = 2, p.col+1
			return nil
		}
		if !targetByte[c] {
			return errRequestLine
		}
	default:
		const version = "HTTP/1."
		switch k := p.col - p.partAt; {
		case k < len(version) && c == version[k]:
		case k == len(version) && '0' <= c && c <= '9':
			p.http10 = c == '0'
		default:
			return errRequestLine
		}
	}
	return nil
}

// fieldByte reads a byte of: field-name ":" OWS field-value OWS.
func (p *parser) fieldByte(c byte) *Error {
	if p.inValue {
		if !valueByte[c] {
			return errControl
		}
		p.value.scan(p.field, c)
		return nil
	}
	switch {
	case c == ':' && p.col > 0:
		p.inValue = true
		if p.phase == phField {
			p.field = p.framingField()
		}
	case p.col == 0 && (c == ' ' || c == '\t'):
		return errFold
	case !isTchar(c):
		return errFieldLine
	case p.nameLen < len(p.name):
		p.name[p.nameLen] = lower(c)
		p.nameLen++
	default:
		p.nameLen = len(p.name) + 1
	}
	return nil
}

// framingField tells which framing field the name just read is.
func (p *parser) framingField() field {
	switch string(p.name[:min(p.nameLen, len(p.name))]) {
	case "content-length":
		if p.nameLen == len("content-length") {
			return fieldContentLength
		}
	case "transfer-encoding":
		if p.nameLen == len("transfer-encoding") {
			return fieldTransferEncoding
		}
	}
	return fieldOther
}

// chunkSizeByte reads a byte of: 1*16HEXDIG [ *WSP | ";" chunk-ext ], the
// form net/http accepts (it refuses white space before the ';').
func (p *parser) chunkSizeByte(c byte) *Error {
	switch p.ext {
	case 0:
		if v, ok := hexValue(c); ok {
			if p.digits == 16 {
				return errChunkSize
			}
			p.remain = p.remain<<4 | uint64(v)
			p.digits++
			return nil
		}
		switch {
		case p.digits == 0:
			return errChunkSize
		case c == ';':
			p.ext = 2
		case c == ' ' || c == '\t':
			p.ext = 1
		default:
			return errChunkSize
		}
	case 1:
		if c != ' ' && c != '\t' {
			return errChunkSize
		}
	default:
		if !valueByte[c] {
			return errChunkSize
		}
	}
	return nil
}

// endLine acts on the end (CRLF) of the line just read.
func (p *parser) endLine() *Error {
	empty := p.col == 0
	defer p.newLine()
	switch p.phase {
	case phRequestLine:
		switch {
		case empty: // RFC 9112 §2.2: empty lines before a request line are ignored.
		case p.part == 2 && p.col-p.partAt == len("HTTP/1.1"):
			p.phase = phField
		default:
			return errRequestLine
		}
	case phField:
		if empty {
			return p.endHead()
		}
		if !p.inValue {
			return errFieldLine
		}
		switch p.field {
		case fieldContentLength:
			p.contentLengths++
			p.contentLength = p.value.num
			p.badCL = p.badCL || !p.value.isNumber()
		case fieldTransferEncoding:
			p.transferEncodings++
			p.badTE = p.badTE || !p.value.isChunked()
		}
	case phTrailer:
		if empty {
			p.phase = phRequestLine
		} else if !p.inValue {
			return errFieldLine
		}
	case phChunkSize:
		if p.digits == 0 {
			return errChunkSize
		}
		p.phase = phChunkData
		if p.remain == 0 {
			p.phase = phTrailer
		}
	case phChunkEnd:
		p.phase = phChunkSize
	}
	return nil
}

// endHead decides how the body of the head just read is framed
// (RFC 9112 §6.3), or refuses the head.
func (p *parser) endHead() *Error {
	switch {
	case p.transferEncodings > 0 && p.contentLengths > 0:
		return errCLAndTE
	case p.transferEncodings > 0 && p.http10:
		return errTEOld
	case p.transferEncodings > 1 || p.badTE:
		return errTE
	case p.transferEncodings == 1:
		p.phase = phChunkSize
	case p.contentLengths > 1:
		return errManyCL
	case p.badCL:
		return errCL
	case p.contentLength > 0:
		p.phase, p.remain = phBody, p.contentLength
	default:
		p.phase = phRequestLine
	}
	p.heads++
	*p = parser{phase: p.phase, heads: p.heads, remain: p.remain}
	return nil
}

// newLine forgets the line just read.
func (p *parser) newLine() {
	p.col, p.part, p.partAt = 0, 0, 0
	p.inValue, p.nameLen, p.field, p.value = false, 0, fieldOther, valueScan{}
	p.digits, p.ext = 0, 0
}

// valueScan reads the value of a framing field: optional white space, one
// word, optional white space.
type valueScan struct {
	state uint8  // 0: before the word, 1: in it, 2: after it, 3: not one word of the kind
	n     int    // bytes of the word
	num   uint64 // Content-Length: the word's value
}

const maxContentLength = 1<<63 - 1 // net/http's limit (strconv.ParseUint(v, 10, 63))

func (v *valueScan) scan(f field, c byte) {
	if f == fieldOther || v.state == 3 {
		return
	}
	ws := c == ' ' || c == '\t'
	switch {
	case ws && v.state != 1:
	case ws:
		v.state = 2
	case v.state == 2:
		v.state = 3
	case f == fieldContentLength && '0' <= c && c <= '9' && v.num <= (maxContentLength-uint64(c-'0'))/10:
		v.state, v.n, v.num = 1, v.n+1, v.num*10+uint64(c-'0')
	case f == fieldTransferEncoding && v.n < len("chunked") && lower(c) == "chunked"[v.n]:
		v.state, v.n = 1, v.n+1
	default:
		v.state = 3
	}
}

// isNumber and isChunked report whether the value was one word of its kind
// (scan refuses any other byte in the word).
func (v *valueScan) isNumber() bool  { return v.state == 1 || v.state == 2 }
func (v *valueScan) isChunked() bool { return v.isNumber() && v.n == len("chunked") }

// Byte classes: tchar (RFC 9110 §5.6.2), a request target's bytes (not
// white space or a control), a field value's (VCHAR, SP, HTAB, obs-text).
var tchar, targetByte, valueByte [256]bool

func init() {
	for c := range 256 {
		tchar[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c < 0x80 && strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
		targetByte[c] = c > ' ' && c != 0x7f
		valueByte[c] = c >= ' ' && c != 0x7f || c == '\t'
	}
}

func isTchar(c byte) bool { return tchar[c] }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
