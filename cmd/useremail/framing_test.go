package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store/storetest"
)

// TestFramingRefused talks raw TCP to a Main serving as useremail serve
// does: a request with both Content-Length and Transfer-Encoding, and one
// with bare LF line ends, are answered 400 validation_error and the
// connection is closed, the request pipelined behind unanswered; sound
// pipelined requests are all answered.
func TestFramingRefused(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			sink := smtptest.Start(t, smtptest.Options{})
			cfg, err := loadConfig(getenv(serveEnv(databaseURL(t, d), sink)))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg, &lockedBuffer{})
			t.Cleanup(func() { m.Close() })
			if err := m.Open(context.Background()); err != nil {
				t.Fatalf("Open: %v", err)
			}
			ctx, stop := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- m.Run(ctx) }()
			t.Cleanup(func() {
				stop()
				<-ran
				_ = m.Shutdown()
			})

			const healthz = "GET /healthz HTTP/1.1\r\nHost: useremail.test\r\n\r\n"
			// The last request of a conversation asks to close, so that a
			// server that answers it does not leave the test waiting.
			const lastHealthz = "GET /healthz HTTP/1.1\r\nHost: useremail.test\r\nConnection: close\r\n\r\n"
			signUp, err := json.Marshal(gen.SignUpJSONRequestBody{Email: "framing@example.com", Password: testPassword})
			if err != nil {
				t.Fatal(err)
			}
			smuggling := "POST /users/ HTTP/1.1\r\nHost: useremail.test\r\nContent-Type: application/json\r\n" +
				"Content-Length: 70\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\n"

			t.Run("content-length and transfer-encoding", func(t *testing.T) {
				answers := talk(t, m.Addr(), smuggling+lastHealthz)
				if len(answers) != 1 {
					t.Fatalf("%d answers, want the refusal alone: %v", len(answers), answers)
				}
				checkFramingProblem(t, answers[0], "Content-Length and Transfer-Encoding")
			})
			t.Run("behind a sound request", func(t *testing.T) {
				answers := talk(t, m.Addr(), healthz+smuggling+lastHealthz)
				if len(answers) != 2 || answers[0].status != http.StatusOK {
					t.Fatalf("answers %v, want 200 and then the refusal alone", answers)
				}
				checkFramingProblem(t, answers[1], "Content-Length and Transfer-Encoding")
			})
			t.Run("bare LF", func(t *testing.T) {
				answers := talk(t, m.Addr(), "GET /healthz HTTP/1.1\nHost: useremail.test\n\n"+lastHealthz)
				if len(answers) != 1 {
					t.Fatalf("%d answers, want the refusal alone: %v", len(answers), answers)
				}
				checkFramingProblem(t, answers[0], "bare LF")
			})
			t.Run("sound pipelined requests", func(t *testing.T) {
				answers := talk(t, m.Addr(), healthz+
					"POST /users/ HTTP/1.1\r\nHost: useremail.test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
					"10;ext=1\r\n"+string(signUp[:16])+"\r\n"+strings.ToUpper(strconv.FormatInt(int64(len(signUp)-16), 16))+"\r\n"+string(signUp[16:])+"\r\n0\r\nX-Trailer: t\r\n\r\n"+
					lastHealthz)
				if len(answers) != 3 || answers[0].status != http.StatusOK || answers[1].status != http.StatusCreated || answers[2].status != http.StatusOK {
					t.Fatalf("answers %v, want 200, 201 (sign-up), 200", answers)
				}
			})
			t.Run("broken chunk", func(t *testing.T) {
				answers := talk(t, m.Addr(), "POST /users/ HTTP/1.1\r\nHost: useremail.test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
					"zz\r\n"+lastHealthz)
				if len(answers) != 1 || answers[0].status != http.StatusBadRequest || answers[0].problem.Code != gen.ErrorCodeValidationError {
					t.Fatalf("answers %v, want one 400 validation_error", answers)
				}
			})
		})
	}
}

// rawAnswer is one answer read off a raw connection.
type rawAnswer struct {
	status      int
	contentType string
	close       bool
	problem     gen.Problem
}

// talk writes out to a fresh connection to addr and reads answers until
// the server closes it.
func talk(t *testing.T, addr, out string) []rawAnswer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a bound on a broken server, not a measurement
	if _, err := io.WriteString(c, out); err != nil {
		t.Fatal(err)
	}
	var answers []rawAnswer
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
			t.Fatal(err)
		}
		a := rawAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), close: resp.Close}
		if a.contentType == "application/problem+json" {
			if err := json.Unmarshal(body, &a.problem); err != nil {
				t.Fatalf("answer %d: %v\n%s", len(answers), err, body)
			}
		}
		answers = append(answers, a)
	}
}

func checkFramingProblem(t *testing.T, a rawAnswer, detail string) {
	t.Helper()
	if a.status != http.StatusBadRequest || a.contentType != "application/problem+json" || !a.close {
		t.Fatalf("answer %+v, want 400 application/problem+json with Connection: close", a)
	}
	if a.problem.Code != gen.ErrorCodeValidationError || a.problem.Detail == nil || !strings.Contains(*a.problem.Detail, detail) {
		t.Errorf("problem %+v, want validation_error naming %q", a.problem, detail)
	}
}
