package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/useremail/useremail/httpframe"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/metrics"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/webhook"
)

// cmdServe serves the API and delivers mail until ctx ends, then drains.
func cmdServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("serve", "useremail serve [--no-migrate]",
		"Serve the HTTP API and deliver mail until SIGINT or SIGTERM, then let the requests\n"+
			"in flight finish within USEREMAIL_SHUTDOWN_GRACE. Pending migrations are applied first.")
	noMigrate := fs.Bool("no-migrate", false, "apply no migration; refuse to start unless the database is migrated")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(e.Getenv)
	if err != nil {
		return err
	}
	m := NewMain(cfg, e.Stderr)
	m.NoMigrate = *noMigrate
	if err := m.Open(ctx); err != nil {
		return errors.Join(err, m.Close())
	}
	runErr := m.Run(ctx)
	return errors.Join(runErr, m.Shutdown(), m.Close())
}

// Main is `useremail serve`: its configuration, and what Open opens for
// Run. A test starts one on 127.0.0.1:0 and reads Addr.
type Main struct {
	Config    config
	NoMigrate bool // Open applies no migration and requires the schema
	Logger    *slog.Logger

	DB         *store.DB
	Dispatcher *mail.Dispatcher
	Server     *server.Server

	fileLock *store.FileLock // SQLite: this serve's hold on the database file

	signer     *signer.Signer
	sender     mail.Sender
	smtp       *mail.SMTPSender // the sender, unless mail goes to the log
	mailbox    *mail.Mailbox    // dev mode: the mail sent, for /dev/mailbox/
	metrics    *metrics.Metrics
	announcer  *mail.Announcer // PostgreSQL only
	listener   net.Listener
	httpServer *http.Server
	stopDebug  func()

	stopMetrics func() // the metrics' own listener (USEREMAIL_METRICS_ADDR)

	background     sync.WaitGroup
	stopBackground context.CancelFunc // set by Run
}

// NewMain returns a Main for cfg that logs to logOutput.
func NewMain(cfg config, logOutput io.Writer) *Main {
	return &Main{Config: cfg, Logger: newLogger(cfg, logOutput)}
}

// Open opens the database (on SQLite holds it, see holdSQLite, and migrates
// it unless NoMigrate), builds the signer, the sender, the metrics, the
// dispatcher and the server, and listens. After an error, Close releases
// what it had opened.
func (m *Main) Open(ctx context.Context) error {
	m.warnConfig()
	if err := m.openDB(ctx); err != nil {
		return err
	}
	if err := m.openSigner(); err != nil {
		return err
	}
	if err := m.openSender(); err != nil {
		return err
	}
	m.metrics = metrics.New(metrics.Options{
		DB:        m.DB,
		Version:   version,
		MailKinds: []string{mail.KindVerify, mail.KindChangeEmail, mail.KindEmailAdded, mail.KindEmailRemoved, mail.KindPrimaryChanged},
		EventTypes: []string{server.EventUserCreated, server.EventUserDeleted, server.EventUserPasswordChanged,
			server.EventEmailAdded, server.EventEmailVerified, server.EventEmailRemoved, server.EventEmailPrimaryChanged},
	})
	if err := m.openDispatcher(); err != nil {
		return err
	}
	if err := m.openServer(); err != nil {
		return err
	}
	return m.listen(ctx)
}

// openDB opens the store, holds it (SQLite), and migrates it or checks
// that it needs no migration.
func (m *Main) openDB(ctx context.Context) (err error) {
	open := openStore
	if m.NoMigrate {
		open = openMigrated
	}
	if m.DB, err = open(ctx, m.Config.DatabaseURL, m.Logger); err != nil {
		return err
	}
	if err := m.holdSQLite(); err != nil {
		return err
	}
	if !m.NoMigrate {
		if err := migrate(ctx, m.DB, m.Logger); err != nil {
			return err
		}
	}
	return m.takeBackClaims(ctx)
}

// holdSQLite takes the lock file of an SQLite database: one serve at a
// time delivers its mail, so that a serve that starts may take back every
// claim (takeBackClaims). The admin commands take no lock.
func (m *Main) holdSQLite() (err error) {
	if m.DB.Dialect() != store.SQLite {
		return nil
	}
	m.fileLock, err = store.LockSQLite(m.Config.DatabaseURL)
	var inUse *store.FileInUseError
	if errors.As(err, &inUse) {
		holder := "pid " + strconv.Itoa(inUse.PID)
		if inUse.PID == 0 {
			holder = "lock file " + inUse.LockFile
		}
		return fmt.Errorf("%s is in use by another useremail serve (%s)", displayURL(m.Config.DatabaseURL), holder)
	}
	return err
}

// takeBackClaims queues again, on SQLite, the mail that a serve that
// stopped had claimed and not finished: holding the file, no other
// dispatcher can own a claim. On PostgreSQL the dispatcher takes back the
// claims of dead replicas itself (mail.Dispatcher.Run).
func (m *Main) takeBackClaims(ctx context.Context) error {
	if m.fileLock == nil {
		return nil
	}
	ids, err := m.DB.TakeBackAllClaims(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if len(ids) > 0 {
		m.Logger.Info("mail: took back the claims of a serve that stopped", "count", len(ids), "outbox_ids", ids)
	}
	ids, err = m.DB.TakeBackAllDeliveryClaims(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if len(ids) > 0 {
		m.Logger.Info("webhook: took back the claims of a serve that stopped", "count", len(ids), "delivery_ids", ids)
	}
	return nil
}

// openSigner builds the link signer; dev mode without a secret gets one
// generated and kept beside the database.
func (m *Main) openSigner() (err error) {
	keys := m.Config.SecretKeys
	if len(keys) == 0 {
		secret, path, err := devSecret(m.Config.DatabaseURL)
		if err != nil {
			return err
		}
		m.Logger.Warn("dev mode: signing links with a generated secret", "file", path)
		keys = [][]byte{secret}
	}
	m.signer, err = signer.New(keys, nil)
	return err
}

// openSender sends mail over SMTP, or in dev mode without an SMTP URL to
// the log: the links are credentials, which no log may hold outside dev
// mode.
func (m *Main) openSender() error {
	if m.Config.SMTPURL == "" {
		if !m.Config.Dev {
			return errors.New("USEREMAIL_SMTP_URL is required outside dev mode")
		}
		m.Logger.Info("dev mode: mail goes to the log and the dev mailbox, not to a mail server (USEREMAIL_SMTP_URL is empty)")
		m.mailbox = mail.NewMailbox(mail.NewLogSender(m.Logger), 0, nil)
		m.sender = m.mailbox
		return nil
	}
	cfg, err := mail.ParseSMTPURL(m.Config.SMTPURL)
	if err != nil {
		return err
	}
	if m.smtp, err = mail.NewSMTPSender(cfg); err != nil {
		return err
	}
	m.sender = m.smtp
	if m.Config.Dev {
		// Dev mode shows its mail in the dev mailbox too.
		m.mailbox = mail.NewMailbox(m.smtp, 0, nil)
		m.sender = m.mailbox
	}
	return nil
}

func (m *Main) openDispatcher() (err error) {
	listenURL := ""
	if m.DB.Dialect() == store.Postgres {
		listenURL = m.Config.DatabaseURL
		m.announcer = mail.NewAnnouncer(m.DB, m.Logger)
	}
	var hooks *webhook.Client
	if len(m.Config.WebhookURLs) > 0 {
		ws, err := webhook.ParseSigner(m.Config.WebhookSecrets...)
		if err != nil {
			return err
		}
		hooks = webhook.NewClient(ws, nil, nil)
	}
	m.Dispatcher, err = mail.NewDispatcher(mail.Config{
		DB:          m.DB,
		Signer:      m.signer,
		Sender:      m.sender,
		PublicURL:   m.Config.PublicURL,
		From:        m.Config.MailFrom,
		ProductName: m.Config.BrandName,
		TemplateDir: m.Config.TemplateDir,
		VerifyTTL:   m.Config.VerifyTTL,
		ChangeTTL:   m.Config.ChangeTTL,
		ResetTTL:    m.Config.ResetTTL,
		ListenURL:   listenURL,
		Logger:      m.Logger,
		Hooks: mail.Hooks{OnSent: m.metrics.MailSent, OnRetry: m.metrics.MailRetried, OnFailed: m.metrics.MailFailed,
			OnDelivered: m.metrics.WebhookDelivered, OnDeliveryRetry: m.metrics.WebhookRetried, OnDeliveryFailed: m.metrics.WebhookFailed},
		Webhooks: hooks,
	})
	return err
}

// mailQueued runs after a commit that queued mail: this process's
// dispatcher wakes at once; on PostgreSQL the announcer tells the other
// processes' (gathered, outside the request's transaction).
func (m *Main) mailQueued() {
	m.Dispatcher.Wake()
	if m.announcer != nil {
		m.announcer.Announce()
	}
}

func (m *Main) openServer() (err error) {
	c := m.Config
	m.Server, err = server.New(server.Config{
		DB:               m.DB,
		Signer:           m.signer,
		Hasher:           password.NewHasher(c.Argon2, 0),
		PublicURL:        c.PublicURL,
		TrustedOrigins:   c.TrustedOrigins,
		CookieDomain:     c.CookieDomain,
		TrustedProxies:   c.TrustedProxies,
		Sessions:         c.Sessions,
		CookieSecure:     c.CookieSecure,
		VerifyTTL:        c.VerifyTTL,
		ChangeTTL:        c.ChangeTTL,
		ResetTTL:         c.ResetTTL,
		MaxEmails:        c.MaxEmails,
		ResendInterval:   c.ResendInterval,
		RateLimits:       c.RateLimits,
		Notices:          c.Notices,
		WebhookEndpoints: c.WebhookURLs,
		Logger:           m.Logger,
		MailQueued:       m.mailQueued,
		Metrics:          m.metrics,
		HideMetrics:      c.MetricsAddr != "",
		BrandName:        c.BrandName,
		AppURL:           c.AppURL,
		TemplateDir:      c.TemplateDir,
		Mailbox:          m.mailbox,
	})
	return err
}

// warnConfig logs the settings that are allowed but work against
// themselves.
func (m *Main) warnConfig() {
	c := m.Config
	// Browsers keep a Secure cookie only from an HTTPS origin or localhost:
	// elsewhere a plain-HTTP sign-in never sticks.
	if u, err := url.Parse(c.PublicURL); err == nil && c.CookieSecure && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		m.Logger.Warn("USEREMAIL_COOKIE_SECURE is on but USEREMAIL_PUBLIC_URL is plain http: browsers will not keep the session cookies; "+
			"serve it over https, or set USEREMAIL_COOKIE_SECURE=false for a trial on a private network", "public_url", c.PublicURL)
	}
}

// listen opens the API's listener and, when configured, the metrics' and
// the profiles'. An address that cannot be bound is named by its variable.
func (m *Main) listen(ctx context.Context) (err error) {
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return fmt.Errorf("USEREMAIL_ADDR %s: %w", m.Config.Addr, err)
	}
	m.httpServer = &http.Server{
		Handler:           m.Server.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.listener = httpframe.Guard(m.httpServer, m.listener, m.Logger)
	// Metrics and profiles stay available until Close, through shutdown.
	if a := m.Config.MetricsAddr; a != "" {
		if m.stopMetrics, err = serveMetrics(context.WithoutCancel(ctx), a, m.metrics.Handler(), m.Logger); err != nil {
			return fmt.Errorf("USEREMAIL_METRICS_ADDR %s: %w", a, err)
		}
	}
	if a := m.Config.DebugAddr; a != "" {
		if m.stopDebug, err = serveDebug(context.WithoutCancel(ctx), a, m.Logger); err != nil {
			return fmt.Errorf("USEREMAIL_DEBUG_ADDR %s: %w", a, err)
		}
	}
	return nil
}

// Addr is the address the API listens on, once Open has succeeded.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run serves HTTP and runs the mail dispatcher, the janitor and, on
// PostgreSQL, the announcer until ctx ends or the listener fails; Shutdown
// then drains them.
func (m *Main) Run(ctx context.Context) error {
	// The background work stops on its own context, after the HTTP server
	// has drained: requests still in flight may queue mail.
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBackground = stop
	m.background.Go(func() {
		if err := m.Dispatcher.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			m.Logger.Error("mail dispatcher stopped", "error", err)
		}
	})
	m.background.Go(func() { m.janitor(bgCtx) })
	if m.announcer != nil {
		m.background.Go(func() { m.announcer.Run(bgCtx) })
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- m.httpServer.Serve(m.listener) }()
	attrs := []any{"addr", m.Addr(), "public_url", m.Config.PublicURL, "database", string(m.DB.Dialect()), "dev", m.Config.Dev}
	if m.mailbox != nil {
		attrs = append(attrs, "account", m.Config.PublicURL+"/account/", "mailbox", m.Config.PublicURL+"/dev/mailbox/")
	}
	m.Logger.Info("serving", attrs...)
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
}

// Close releases what Open opened: the SMTP connections, the metrics' and
// the profiles' listeners, the API's listener when Run never served it, the
// database and its lock file. A second Close does nothing.
func (m *Main) Close() error {
	m.hangUpSMTP()
	if m.stopMetrics != nil {
		m.stopMetrics()
		m.stopMetrics = nil
	}
	if m.stopDebug != nil {
		m.stopDebug()
		m.stopDebug = nil
	}
	if m.listener != nil && m.stopBackground == nil {
		_ = m.listener.Close()
	}
	var err error
	if m.DB != nil {
		err = m.DB.Close()
		m.DB = nil
	}
	if m.fileLock != nil {
		err = errors.Join(err, m.fileLock.Unlock())
		m.fileLock = nil
	}
	return err
}
