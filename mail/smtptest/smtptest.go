// Package smtptest runs an in-process SMTP server (github.com/emersion/go-smtp)
// for tests: it records the envelope and the raw DATA of every mail it
// accepts, can answer the next commands with a chosen reply code (421, 451,
// 550, …) to simulate failures, can take its time over each mail's data as
// a busy relay would, and can be stopped and restarted on the same port to
// simulate an outage. It can also offer STARTTLS with a self-signed
// certificate and require AUTH PLAIN.
//
// It imports no other package of the project, so any package's tests may
// use it.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// Mail is one accepted mail.
type Mail struct {
	From string   // the MAIL FROM address, without angle brackets
	To   []string // the RCPT TO addresses
	Data string   // the raw message: headers and body, CRLF line ends
	User string   // the AUTH user name, if the session authenticated
	TLS  bool     // whether the session was encrypted
	// Reply is the code the server answered the data with: 250, or the
	// code of a simulated failure at StageData.
	Reply int
}

// Stage names the command a simulated failure answers.
type Stage string

// The stages FailNextAt can fail.
const (
	StageMail Stage = "MAIL" // MAIL FROM
	StageRcpt Stage = "RCPT" // RCPT TO
	StageData Stage = "DATA" // the reply after the message data
)

// Options configure a Server.
type Options struct {
	// TLS offers STARTTLS with a self-signed certificate for 127.0.0.1;
	// ClientTLSConfig returns a client configuration that trusts it.
	TLS bool
	// ImplicitTLS speaks TLS from the first byte (smtps), with the same
	// certificate, instead of offering STARTTLS.
	ImplicitTLS bool
	// Username and Password, when set, make the server offer AUTH PLAIN
	// (after STARTTLS) and refuse mail from sessions that did not
	// authenticate with them.
	Username, Password string
	// DataDelay is how long the server takes, after it received a
	// message's data, before it accepts the mail and replies, as a busy
	// relay would. A client that goes away meanwhile does not stop it: the
	// mail is accepted all the same, as real servers do (RFC 1047).
	DataDelay time.Duration
}

// Server is an in-process SMTP server on 127.0.0.1.
type Server struct {
	opts      Options
	addr      string
	serverTLS *tls.Config
	clientTLS *tls.Config

	mu    sync.Mutex
	srv   *gosmtp.Server
	ln    net.Listener
	mails []Mail // accepted
	data  []Mail // every message data received, accepted or not
	fails map[Stage]failure
	conns int           // sessions opened, for tests of connection reuse
	added chan struct{} // closed, and replaced, when a mail is accepted
}

type failure struct{ n, code int }

// Start starts a Server on a free port of 127.0.0.1; it is stopped when tb
// ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{opts: opts, fails: map[Stage]failure{}, added: make(chan struct{})}
	if opts.TLS || opts.ImplicitTLS {
		var err error
		if s.serverTLS, s.clientTLS, err = selfSigned(); err != nil {
			tb.Fatalf("smtptest: certificate: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtptest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	tb.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Host returns the server's host, 127.0.0.1.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

// Port returns the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// URL returns smtp://[user:pass@]host:port for the server (smtps:// with
// Options.ImplicitTLS).
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	if s.opts.ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.opts.Username != "" {
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	}
	return u.String()
}

// ClientTLSConfig returns a client TLS configuration that trusts the
// server's certificate (nil without Options.TLS or Options.ImplicitTLS).
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.Clone()
}

// Mails returns the mails accepted so far, oldest first.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// DataReceived returns every message whose data the server received,
// accepted or refused (see Mail.Reply), oldest first.
func (s *Server) DataReceived() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.data...)
}

// Sessions returns how many SMTP sessions clients have opened.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Reset forgets the mails accepted so far and any pending failures.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mails, s.data = nil, nil
	s.fails = map[Stage]failure{}
}

// Wait waits until at least n mails were accepted and returns them; it fails
// tb if that takes longer than timeout.
func (s *Server) Wait(tb testing.TB, n int, timeout time.Duration) []Mail {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		mails, added := slices.Clone(s.mails), s.added
		s.mu.Unlock()
		if len(mails) >= n {
			return mails
		}
		select {
		case <-added:
		case <-timer.C:
			tb.Fatalf("smtptest: %d mails after %v, want %d", len(s.Mails()), timeout, n)
		}
	}
}

// FailNext answers the next n MAIL FROM commands with code (and so fails the
// next n mail transactions).
func (s *Server) FailNext(n, code int) { s.FailNextAt(StageMail, n, code) }

// FailNextAt answers the next n commands of stage with code.
func (s *Server) FailNextAt(stage Stage, n, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails[stage] = failure{n: n, code: code}
}

// Stop closes the listener and every open connection, as a crashed server
// would. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		// Close the listener too: srv.Close knows it only once Serve has
		// started, which may not have happened yet.
		_ = ln.Close()
		_ = srv.Close()
	}
}

// Restart starts a stopped server again on the same port, keeping the mails
// it accepted before.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return errors.New("smtptest: server is running")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("smtptest: listen again on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

func (s *Server) serve(ln net.Listener) {
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &session{server: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if s.opts.ImplicitTLS {
		ln = tls.NewListener(ln, s.serverTLS)
	} else {
		srv.TLSConfig = s.serverTLS
	}
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// takeFailure consumes one simulated failure of stage, if any.
func (s *Server) takeFailure(stage Stage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fails[stage]
	if f.n <= 0 {
		return nil
	}
	f.n--
	s.fails[stage] = f
	return &gosmtp.SMTPError{
		Code:         f.code,
		EnhancedCode: gosmtp.EnhancedCode{f.code / 100, 0, 0},
		Message:      "smtptest: simulated failure",
	}
}

type session struct {
	server *Server
	conn   *gosmtp.Conn
	user   string
	cur    Mail
}

func (s *session) Reset()        { s.cur = Mail{} }
func (s *session) Logout() error { return nil }

func (s *session) AuthMechanisms() []string {
	if s.server.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.server.opts.Username || password != s.server.opts.Password {
			return &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.server.opts.Username != "" && s.user == "" {
		return gosmtp.ErrAuthRequired
	}
	if err := s.server.takeFailure(StageMail); err != nil {
		return err
	}
	s.cur = Mail{From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if err := s.server.takeFailure(StageRcpt); err != nil {
		return err
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if d := s.server.opts.DataDelay; d > 0 {
		time.Sleep(d)
	}
	m := s.cur
	m.Data = string(b)
	m.User = s.user
	_, m.TLS = s.conn.TLSConnectionState()
	m.Reply = 250
	failErr := s.server.takeFailure(StageData)
	var se *gosmtp.SMTPError
	if errors.As(failErr, &se) {
		m.Reply = se.Code
	}
	s.server.mu.Lock()
	defer s.server.mu.Unlock()
	s.server.data = append(s.server.data, m)
	if failErr != nil {
		return failErr
	}
	s.server.mails = append(s.server.mails, m)
	close(s.server.added)
	s.server.added = make(chan struct{})
	return nil
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, and the server
// and client TLS configurations that use it.
func selfSigned() (server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}
