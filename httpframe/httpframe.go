// Package httpframe refuses HTTP/1.x requests whose framing is ambiguous,
// where their bytes arrive and before net/http reads them: a head with both
// Content-Length and Transfer-Encoding (RFC 9112 §6.1), a line ending in a
// bare LF or a bare CR, obsolete line folding, a Content-Length that is not
// one number, a Transfer-Encoding other than chunked. net/http cannot be
// asked to: it deletes Content-Length when Transfer-Encoding is present and
// reads bare LF as a line end, so a handler never sees such a request as it
// came, while a proxy in front may have framed it differently.
//
// Each connection's bytes go through a parser that knows where every head
// and body ends, so that pipelined requests are checked one by one. A
// refused head is answered 400 application/problem+json (validation_error)
// once the requests before it are answered, and the connection is closed;
// nothing behind it is read. A fault inside a body (a bad chunk-size line)
// fails the reading of that body, as net/http's own chunked reader does, and
// the connection closes after its answer.
//
// This package imports only gen (the Problem body) from the project.
package httpframe

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/useremail/useremail/gen"
)

// Guard returns ln with the framing of every request checked, for srv to
// serve. It sets srv.ConnState (calling the one srv had), which tells it
// when the requests before a refused one are answered. Refusals are logged
// on logger.
func Guard(srv *http.Server, ln net.Listener, logger *slog.Logger) net.Listener {
	next := srv.ConnState
	srv.ConnState = func(nc net.Conn, s http.ConnState) {
		if next != nil {
			next(nc, s)
		}
		if c, ok := nc.(*conn); ok {
			c.stateChanged(s)
		}
	}
	return &listener{Listener: ln, logger: logger}
}

type listener struct {
	net.Listener
	logger *slog.Logger
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc, logger: l.logger}, nil
}

// How long a refusal may take to write, and how long the connection then
// lingers, reading and dropping what the client still sends, so that its
// close does not reset the connection before the client has read the answer.
const (
	refusalWriteTimeout = 5 * time.Second
	lingerTimeout       = 500 * time.Millisecond
	maxLinger           = 256 << 10
)

// conn checks the requests read through it. net/http never calls Read
// concurrently (its background read and its request reads take turns), so
// the parser needs no lock; the refusal is shared with the ConnState hook.
type conn struct {
	net.Conn
	logger *slog.Logger

	p        parser
	broken   *Error // a fault in a body handed on: every later Read fails with it
	refusing bool   // a head was refused: Read waits for its answer to be sent
	hijacked atomic.Bool

	mu       sync.Mutex
	refused  *Error // the refused head
	before   int    // requests handed on before it
	answered int    // requests answered (StateIdle)
	done     bool   // the refusal is sent, or being sent
}

func (c *conn) Read(b []byte) (int, error) {
	switch {
	case c.hijacked.Load():
		return c.Conn.Read(b)
	case c.broken != nil:
		return 0, c.broken
	case c.refusing:
		return c.awaitRefusal(b)
	}
	n, err := c.Conn.Read(b)
	sound, fault := c.p.feed(b[:n])
	switch {
	case fault == nil:
		return n, err
	case !c.p.inHead():
		c.broken = fault
		c.log(fault)
	default:
		c.mu.Lock()
		c.refused, c.before = fault, c.p.heads
		c.mu.Unlock()
		c.refusing = true
	}
	switch {
	case sound > 0:
		return sound, nil
	case c.broken != nil:
		return 0, c.broken
	}
	return c.awaitRefusal(b)
}

// awaitRefusal answers a Read after a refused head. When every request
// before it is answered, net/http is reading the refused one: refuse it.
// Otherwise this is net/http's background read while it answers an earlier
// request: drop what arrives until net/http ends the read (a deadline) or
// the client leaves; the ConnState hook then sends the refusal.
func (c *conn) awaitRefusal(b []byte) (int, error) {
	for {
		now, sent := c.claimRefusal()
		if now {
			c.refuse()
		}
		if now || sent {
			return 0, io.EOF
		}
		if _, err := c.Conn.Read(b); err != nil {
			return 0, err
		}
	}
}

// claimRefusal reports whether the caller is to send the refusal now (and
// marks it sent), or whether it is sent already.
func (c *conn) claimRefusal() (now, sent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.done:
		return false, true
	case c.refused != nil && c.answered == c.before:
		c.done = true
		return true, false
	}
	return false, false
}

// stateChanged counts the answered requests and, once the last request
// before a refused head is answered, sends the refusal.
func (c *conn) stateChanged(s http.ConnState) {
	switch s {
	case http.StateHijacked:
		c.hijacked.Store(true)
	case http.StateIdle:
		c.mu.Lock()
		c.answered++
		c.mu.Unlock()
		if now, _ := c.claimRefusal(); now {
			c.refuse()
		}
	}
}

// refuse writes the 400 answer of the refused head and closes the
// connection, lingering first so that the client can read it.
func (c *conn) refuse() {
	c.mu.Lock()
	fault := c.refused
	c.mu.Unlock()
	c.log(fault)
	_ = c.Conn.SetWriteDeadline(time.Now().Add(refusalWriteTimeout))
	if _, err := c.Conn.Write(refusal(fault)); err == nil {
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, maxLinger))
	}
	_ = c.Conn.Close()
}

// CloseWrite lets net/http half-close the connection after an answer it
// ends early (as it does for a body over its limit).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) log(fault *Error) {
	if c.logger != nil {
		c.logger.Info("request refused: framing", "remote", c.RemoteAddr().String(), "field", fault.Field, "detail", fault.Detail)
	}
}

// refusal is the whole HTTP answer to a refused head.
func refusal(fault *Error) []byte {
	detail := fault.Detail
	body, err := json.Marshal(gen.Problem{
		Type:   "urn:useremail:problem:" + string(gen.ErrorCodeValidationError),
		Title:  "Invalid request",
		Status: http.StatusBadRequest,
		Code:   gen.ErrorCodeValidationError,
		Detail: &detail,
		Errors: &[]gen.FieldError{{Field: fault.Field, Code: "invalid", Message: detail}},
	})
	if err != nil {
		panic(err) // a Problem always marshals
	}
	return fmt.Appendf(nil, "HTTP/1.1 400 Bad Request\r\n"+
		"Content-Type: application/problem+json\r\n"+
		"Content-Length: %d\r\n"+
		"Cache-Control: no-store\r\n"+
		"X-Content-Type-Options: nosniff\r\n"+
		"Connection: close\r\n\r\n%s", len(body), body)
}
