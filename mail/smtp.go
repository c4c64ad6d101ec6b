package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/useremail/useremail/address"
)

// SMTPConfig says how an SMTPSender reaches its mail server.
type SMTPConfig struct {
	Host string
	Port int
	// ImplicitTLS speaks TLS from the first byte (smtps://, port 465).
	// Without it the sender uses STARTTLS when the server offers it (and
	// then the certificate must verify) and plain SMTP otherwise.
	ImplicitTLS bool
	// Username and Password turn on SMTP AUTH. The mechanism is discovered
	// from the server's offer; PLAIN and LOGIN are used only over TLS, so a
	// password never crosses the network in clear.
	Username string
	Password string
	// TLSConfig is used for STARTTLS and implicit TLS; nil means the system
	// roots and Host as the server name.
	TLSConfig *tls.Config
	// HELO is the name given in EHLO; empty means the local host name.
	HELO string
	// ConnectTimeout bounds the TCP connection (and the TLS handshake of
	// implicit TLS); default 10 s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds each SMTP command and its reply; default 30 s.
	CommandTimeout time.Duration
	// MaxIdleConns is how many connections are kept open between mails;
	// default 4. IdleTimeout is how long one may stay idle; default 30 s.
	MaxIdleConns int
	IdleTimeout  time.Duration
}

// String returns the configuration as a URL with the password redacted, for
// logs.
func (c SMTPConfig) String() string {
	u := url.URL{Scheme: "smtp", Host: hostPort(c.Host, c.Port)}
	if c.ImplicitTLS {
		u.Scheme = "smtps"
	}
	if c.Username != "" {
		u.User = url.UserPassword(c.Username, "xxxxx")
	}
	return u.String()
}

// GoString redacts the password from %#v too.
func (c SMTPConfig) GoString() string { return "mail.SMTPConfig(" + c.String() + ")" }

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// ParseSMTPURL parses USEREMAIL_SMTP_URL: smtp://[user:pass@]host[:port]
// (STARTTLS when offered; port 587 with credentials, 25 without) or
// smtps://[user:pass@]host[:port] (implicit TLS; port 465). The user name and
// password are URL-decoded. Its errors never contain the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	const want = "want smtp://[user:pass@]host[:port] or smtps://[user:pass@]host[:port]"
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep only the
		// reason, and not even that for a bad escape, which quotes part of
		// the text.
		var ue *url.Error
		var ee url.EscapeError
		switch {
		case errors.As(err, &ee):
			return SMTPConfig{}, fmt.Errorf("mail: SMTP URL: invalid %%-escape; %s", want)
		case errors.As(err, &ue):
			return SMTPConfig{}, fmt.Errorf("mail: SMTP URL: %v; %s", ue.Err, want)
		}
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL: malformed; %s", want)
	}
	var cfg SMTPConfig
	switch strings.ToLower(u.Scheme) {
	case "smtp":
	case "smtps":
		cfg.ImplicitTLS = true
	case "":
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL has no scheme; %s", want)
	default:
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL scheme %q is not supported; %s", u.Scheme, want)
	}
	if u.Opaque != "" || u.Host == "" {
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL has no host; %s", want)
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL has no host; %s", want)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s: a path, query or fragment is not supported; %s", redacted(u), want)
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		pass, ok := u.User.Password()
		if cfg.Username == "" {
			return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s: empty user name", redacted(u))
		}
		if !ok || pass == "" {
			return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s: user %q has no password", redacted(u), cfg.Username)
		}
		cfg.Password = pass
	}
	switch p := u.Port(); {
	case p != "":
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("mail: SMTP URL %s: port %q is not a number from 1 to 65535", redacted(u), p)
		}
		cfg.Port = n
	case cfg.ImplicitTLS:
		cfg.Port = 465
	case cfg.Username != "":
		cfg.Port = 587 // submission, where clients authenticate
	default:
		cfg.Port = 25 // a relay that trusts this host
	}
	return cfg, nil
}

func redacted(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	return c.String()
}

// SMTPSender delivers mails to one SMTP server with go-mail. It keeps up to
// MaxIdleConns connections open between mails, so that a busy dispatcher
// pays the connection, EHLO, STARTTLS and AUTH once per connection and not
// once per mail. It is safe for concurrent use: each Send has a connection
// of its own.
type SMTPSender struct {
	cfg    SMTPConfig
	client *gomail.Client // the dial, TLS and AUTH settings; holds no connection

	mu     sync.Mutex
	idle   []idleConn // most recently used last
	closed bool
}

type idleConn struct {
	c     *smtp.Client
	since time.Time
}

// NewSMTPSender returns an SMTPSender for cfg. It does not connect.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	if cfg.Host == "" {
		return nil, errors.New("mail: SMTP host is empty")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("mail: SMTP port %d is not from 1 to 65535", cfg.Port)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = 4
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	var tlsConfig *tls.Config
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	} else {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = cfg.Host
	}
	opts := []gomail.Option{
		gomail.WithPort(cfg.Port),
		gomail.WithTimeout(cfg.CommandTimeout),
		gomail.WithTLSConfig(tlsConfig),
	}
	if cfg.ImplicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else {
		// go-mail's default is TLSMandatory, which refuses servers without
		// STARTTLS; the contract is "STARTTLS when offered".
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	client, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mail: SMTP client for %s: %w", cfg, err)
	}
	return &SMTPSender{cfg: cfg, client: client}, nil
}

// Close closes the idle connections. Sends still running finish, and their
// connections are then closed rather than kept.
func (s *SMTPSender) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, ic := range idle {
		hangUp(ic.c)
	}
	return nil
}

// Send delivers m in one SMTP transaction: MAIL FROM the From address, RCPT
// TO the recipient with its domain in A-label form, and a multipart/
// alternative body with the text and the HTML. Each command is bounded by
// CommandTimeout and by ctx's deadline; a new connection takes at most
// ConnectTimeout plus CommandTimeout (40 s by default), so ctx should allow
// more than that.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	msg, from, rcpt, err := buildMsg(m)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		c, reused, err := s.conn(ctx)
		if err != nil {
			return err
		}
		err = s.transact(ctx, c, from, rcpt, msg)
		if err == nil {
			s.put(c)
			return nil
		}
		// After any error the connection's state is unknown: never reuse it.
		hangUp(c)
		if reused && try == 0 && droppedWhileIdle(err) && s.timeLeftToConnect(ctx) {
			continue
		}
		return err
	}
}

// timeLeftToConnect reports whether ctx leaves time for a whole new
// connection: go-mail bounds the greeting, STARTTLS and AUTH by its own
// timeout, not by ctx.
func (s *SMTPSender) timeLeftToConnect(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > s.cfg.ConnectTimeout+s.cfg.CommandTimeout
}

// transact runs one mail transaction on c.
func (s *SMTPSender) transact(ctx context.Context, c *smtp.Client, from, rcpt string, msg *gomail.Msg) error {
	// go-mail's SMTP client takes no context: bound each step with a
	// connection deadline no later than ctx's.
	step := func(stage string, fn func() error) error {
		if err := ctx.Err(); err != nil {
			return &stageError{stage: stage, err: err}
		}
		timeout := s.cfg.CommandTimeout
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
			timeout = time.Until(dl)
		}
		if err := c.UpdateDeadline(timeout); err != nil {
			return &stageError{stage: stage, err: err}
		}
		if err := fn(); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = fmt.Errorf("%w: %w", ctxErr, err)
			}
			return &stageError{stage: stage, err: err}
		}
		return nil
	}
	if err := step(stageMail, func() error { return c.Mail("<" + from + ">") }); err != nil {
		return err
	}
	if err := step("RCPT TO", func() error { return c.Rcpt("<" + rcpt + ">") }); err != nil {
		return err
	}
	var w io.WriteCloser
	if err := step("DATA", func() error {
		var err error
		w, err = c.Data()
		return err
	}); err != nil {
		return err
	}
	return step("end of DATA", func() error {
		if _, err := msg.WriteTo(w); err != nil {
			_ = w.Close()
			return err
		}
		return w.Close()
	})
}

const stageMail = "MAIL FROM"

// stageError says which step of a transaction failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return "smtp " + e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// connectError marks a failure to connect, greet, start TLS or authenticate.
type connectError struct{ err error }

func (e *connectError) Error() string { return "smtp connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// permanentError marks a mail that cannot be sent as it is, whatever the
// server.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// conn returns a kept connection, or dials a new one.
func (s *SMTPSender) conn(ctx context.Context) (c *smtp.Client, reused bool, err error) {
	var stale []*smtp.Client
	s.mu.Lock()
	for len(s.idle) > 0 && c == nil {
		ic := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if time.Since(ic.since) < s.cfg.IdleTimeout && ic.c.HasConnection() {
			c = ic.c
		} else {
			stale = append(stale, ic.c)
		}
	}
	s.mu.Unlock()
	for _, sc := range stale {
		hangUp(sc)
	}
	if c != nil {
		return c, true, nil
	}
	dialCtx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	c, err = s.client.DialToSMTPClientWithContext(dialCtx)
	if err != nil {
		return nil, false, &connectError{err: err}
	}
	return c, false, nil
}

// put keeps c for the next Send, or closes it if enough are kept.
func (s *SMTPSender) put(c *smtp.Client) {
	s.mu.Lock()
	if s.closed || len(s.idle) >= s.cfg.MaxIdleConns {
		s.mu.Unlock()
		hangUp(c)
		return
	}
	s.idle = append(s.idle, idleConn{c: c, since: time.Now()})
	s.mu.Unlock()
}

// hangUp says QUIT, briefly, and closes the connection.
func hangUp(c *smtp.Client) {
	if !c.HasConnection() {
		return
	}
	if err := c.UpdateDeadline(2 * time.Second); err == nil && c.Quit() == nil {
		return
	}
	_ = c.Close()
}

// buildMsg turns m into a go-mail message and its envelope.
func buildMsg(m Message) (msg *gomail.Msg, from, rcpt string, err error) {
	fromAddr, err := netmail.ParseAddress(m.From)
	if err != nil {
		return nil, "", "", &permanentError{fmt.Errorf("mail: From %q: %w", m.From, err)}
	}
	msg = gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.From); err != nil {
		return nil, "", "", &permanentError{fmt.Errorf("mail: From %q: %w", m.From, err)}
	}
	if err := msg.To(m.To); err != nil {
		return nil, "", "", &permanentError{fmt.Errorf("mail: To %q: %w", m.To, err)}
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(m.Date)
	msg.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(m.MessageID, "<"), ">"))
	// RFC 3834: tells vacation responders and the like not to answer.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	if m.Language != "" {
		msg.SetGenHeader(gomail.HeaderContentLang, m.Language)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, envelopeAddress(fromAddr.Address), envelopeAddress(m.To), nil
}

// envelopeAddress returns raw with its domain in A-label form, as SMTP
// envelopes need it, or raw itself if it does not normalize.
func envelopeAddress(raw string) string {
	a, err := address.Normalize(raw)
	if err != nil {
		return raw
	}
	return a.ASCII()
}

// Permanent reports whether a Send error means the mail can never be
// delivered as it is, so that retrying is pointless: a 5xx reply to the
// transaction (MAIL FROM, RCPT TO, DATA), a go-mail SendError with a 5xx
// code or about the message itself, or a message that cannot be rendered or
// built. Everything else is temporary: 4xx replies, refused or dropped
// connections, timeouts, DNS and TLS errors.
//
// A failure to connect, greet, start TLS or authenticate is temporary
// whatever its reply code: it says nothing about this mail, and failing
// every queued mail on one try because of a relay's misconfiguration (a 535
// to AUTH, a 554 greeting) would lose mails that an operator's fix would
// have delivered.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return false
	}
	if errors.Is(err, errUnrenderable) {
		return true
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code != 0 {
			return code >= 500 && code <= 599
		}
		switch se.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			return true
		}
		return false
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 500 && te.Code <= 599
	}
	return false
}

// droppedWhileIdle reports an error of a kept connection that the server
// closed while it was idle: MAIL FROM failed without a reply, or with 421
// (closing). The server took nothing, so a fresh connection may try again
// without any risk of a duplicate.
func droppedWhileIdle(err error) bool {
	var se *stageError
	if !errors.As(err, &se) || se.stage != stageMail {
		return false
	}
	return !isReply(se.err, 0) || isReply(se.err, 421)
}

// isReply reports whether err carries an SMTP reply with the given code, or
// any reply when code is 0.
func isReply(err error, code int) bool {
	var te *textproto.Error
	return errors.As(err, &te) && (code == 0 || te.Code == code)
}
