package httpframe

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
)

// served is what the test server's handler saw: the path of each request
// and how its body read.
type served struct {
	mu    sync.Mutex
	paths []string
}

func (s *served) add(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paths = append(s.paths, p)
}

func (s *served) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

// startServer serves on 127.0.0.1 through Guard a handler that reads each
// body whole and answers its length, or 400 "body: <error>" when it breaks.
func startServer(t testing.TB, guarded bool) (addr string, seen *served) {
	t.Helper()
	seen = &served{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				seen.add(r.URL.Path + " body error")
				http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
				return
			}
			seen.add(r.URL.Path)
			fmt.Fprintf(w, "%s %d", r.URL.Path, n)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       time.Minute,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if guarded {
		ln = Guard(srv, ln, slog.New(slog.DiscardHandler))
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), seen
}

// converse writes each of writes to a fresh connection to addr, then reads
// answers until the server closes it.
func converse(t *testing.T, addr string, writes ...string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A bound on a broken server, not a measurement.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	for _, w := range writes {
		if _, err := io.WriteString(c, w); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	return readAnswers(t, c)
}

// readAnswers reads HTTP answers from c until it is closed.
func readAnswers(t *testing.T, c net.Conn) []*http.Response {
	t.Helper()
	var answers []*http.Response
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return answers
		}
		if err != nil {
			t.Fatalf("after %d answers: %v", len(answers), err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("answer %d: %v", len(answers), err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		answers = append(answers, resp)
	}
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

// checkRefusal checks that r is the 400 problem+json answer of fault.
func checkRefusal(t *testing.T, r *http.Response, fault *Error) {
	t.Helper()
	if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" || !r.Close {
		t.Fatalf("answer %d %q, Connection: close %v; want 400 application/problem+json closing", r.StatusCode, r.Header.Get("Content-Type"), r.Close)
	}
	var p gen.Problem
	if err := json.Unmarshal([]byte(bodyOf(r)), &p); err != nil {
		t.Fatalf("body: %v", err)
	}
	if p.Code != gen.ErrorCodeValidationError || p.Status != 400 || p.Detail == nil || *p.Detail != fault.Detail ||
		p.Errors == nil || len(*p.Errors) != 1 || (*p.Errors)[0].Field != fault.Field {
		t.Errorf("problem %+v, want validation_error with detail %q on %s", p, fault.Detail, fault.Field)
	}
}

func paths(rs []*http.Response) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d %s", r.StatusCode, bodyOf(r)))
	}
	return out
}

func TestConversations(t *testing.T) {
	clte := post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")
	tests := []struct {
		name    string
		writes  []string
		answers []string // status and body of each answer before the refusal, or all of them
		fault   *Error   // the last answer refuses this; nil: no refusal
		seen    []string // what the handler saw
	}{
		{"written apart", []string{get, getNext, withLength("abc"), chunked("3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\n"), getLast},
			[]string{"200 / 0", "200 /next 0", "200 /users/ 3", "200 /users/ 3", "200 /last 0"}, nil,
			[]string{"/", "/next", "/users/", "/users/", "/last"}},
		{"pipelined", []string{get + getNext + withLength("abc") + getLast},
			[]string{"200 / 0", "200 /next 0", "200 /users/ 3", "200 /last 0"}, nil,
			[]string{"/", "/next", "/users/", "/last"}},
		{"a byte at a time", strings.Split(withLength("abc")+chunked("3\r\nabc\r\n0\r\n\r\n")+getLast, ""),
			[]string{"200 /users/ 3", "200 /users/ 3", "200 /last 0"}, nil, []string{"/users/", "/users/", "/last"}},
		{"content-length and transfer-encoding, then a pipelined request", []string{clte + getNext},
			nil, errCLAndTE, nil},
		{"the same behind a sound request", []string{get + clte + getNext},
			[]string{"200 / 0"}, errCLAndTE, []string{"/"}},
		{"the same behind a sound request with a body", []string{withLength("abcdef") + clte + getNext},
			[]string{"200 /users/ 6"}, errCLAndTE, []string{"/users/"}},
		{"the same, written apart", []string{get, clte, getNext},
			[]string{"200 / 0"}, errCLAndTE, []string{"/"}},
		{"bare LF", []string{"GET /next HTTP/1.1\nHost: a\n\n"}, nil, errBareLF, nil},
		{"bare LF behind a sound request", []string{get + "GET /next HTTP/1.1\nHost: a\n\n"},
			[]string{"200 / 0"}, errBareLF, []string{"/"}},
		{"gzip, chunked", []string{post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n") + get}, nil, errTE, nil},
		{"obs-fold", []string{"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n" + get}, nil, errFold, nil},
		{"broken chunk size", []string{chunked("zz\r\n") + getNext},
			[]string{"400 body: " + errChunkSize.Error() + "\n"}, nil, []string{"/users/ body error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, seen := startServer(t, true)
			answers := converse(t, addr, tc.writes...)
			want := len(tc.answers)
			if tc.fault != nil {
				want++
			}
			if len(answers) != want {
				t.Fatalf("answers %q, want %q and then the refusal %v", paths(answers), tc.answers, tc.fault)
			}
			if tc.fault != nil {
				checkRefusal(t, answers[want-1], tc.fault)
				answers = answers[:want-1]
			}
			if got := paths(answers); strings.Join(got, "|") != strings.Join(tc.answers, "|") {
				t.Errorf("answers %q, want %q", got, tc.answers)
			}
			if got := seen.all(); strings.Join(got, "|") != strings.Join(tc.seen, "|") {
				t.Errorf("the handler saw %q, want %q", got, tc.seen)
			}
		})
	}
}

// TestUnguarded shows what Guard is for: net/http alone answers a request
// pipelined behind one with both Content-Length and Transfer-Encoding, and
// answers a request with bare LF line ends.
func TestUnguarded(t *testing.T) {
	addr, _ := startServer(t, false)
	clte := post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")
	if answers := converse(t, addr, clte+getNext+getLast); len(answers) != 3 {
		t.Errorf("unguarded: %q, want three answers", paths(answers))
	}
	if answers := converse(t, addr, "GET /next HTTP/1.1\nHost: a\nConnection: close\n\n"); len(answers) != 1 || answers[0].StatusCode != 200 {
		t.Errorf("unguarded bare LF: %q, want 200", paths(answers))
	}
}

// BenchmarkKeepAliveGET is a GET after GET on one connection through a real
// listener, with and without Guard.
func BenchmarkKeepAliveGET(b *testing.B) {
	for _, bc := range []struct {
		name    string
		guarded bool
	}{{"listener=plain", false}, {"listener=guarded", true}} {
		b.Run(bc.name, func(b *testing.B) {
			addr, _ := startServer(b, bc.guarded)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			req := []byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: application/json\r\n\r\n")
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
					b.Fatalf("answer %d, %v", resp.StatusCode, err)
				}
				resp.Body.Close()
			}
		})
	}
}
