// Package server implements useremail's HTTP API: the strict server
// interface generated from openapi.yaml (package gen), request validation
// against that spec, sessions and CSRF, the problem+json error answers, and
// the HTTP side of the HTML pages (the account pages, the pages behind the
// mailed links, the dev mailbox), whose templates and words are packages
// pages and locale.
//
// It depends on gen, store, signer, session, ratelimit, password, address,
// mail, pages and locale; none of those depends on it.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/pages"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/ratelimit"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// Config is everything the server needs. New fills unset durations and
// limits with the documented defaults.
type Config struct {
	DB     *store.DB
	Signer *signer.Signer
	Hasher *password.Hasher

	// PublicURL is the base of the links in mails (scheme://host[:port]).
	PublicURL string
	// TrustedOrigins may send unsafe requests under a session besides
	// PublicURL's own origin, and get CORS with credentials on every path
	// but /admin/ (browser apps on other origins).
	TrustedOrigins []string
	// CookieDomain is the Domain of the session cookies, so that the apps
	// on sibling hosts send them; empty: none (the host that set them).
	CookieDomain string
	// TrustedProxies are the networks whose X-Forwarded-For is believed:
	// behind them, the client is the first hop of the header, counted from
	// the right, that is not one of them. Without any, the client is the
	// peer and the header is ignored.
	TrustedProxies []netip.Prefix

	Sessions     session.Policy
	CookieSecure bool

	VerifyTTL time.Duration // verify links' max age; default 72h
	ChangeTTL time.Duration // set-primary links' max age; default 24h
	ResetTTL  time.Duration // password reset links' max age; default 1h

	MaxEmails int // addresses per user; default 10
	// ResendInterval is the least time between two verification mails for
	// one user to one address; with it (0 turns both off) comes a cap on the
	// verification mails to one address across all users
	// (DailyMailsPerAddress a day).
	ResendInterval time.Duration
	// RateLimits turns the request limits on: email management, wrong
	// passwords, login failures, and those per client network. The mail
	// limits of ResendInterval apply either way.
	RateLimits bool
	// Notices turns the security notices on (address added, removed,
	// primary changed).
	Notices bool

	// WebhookEndpoints are the URLs every event is delivered to
	// (USEREMAIL_WEBHOOK_URLS); events are recorded without any too.
	WebhookEndpoints []string
	// EventsOff records no events at all, against the contract: only for
	// benchmarks that measure what the events cost a request.
	EventsOff bool

	BodyLimit int64 // bytes; default 64 KiB
	// RequestTimeout bounds each request's database work and its wait for
	// a password-hashing slot; past it the answer is 503 unavailable.
	// Default DefaultRequestTimeout.
	RequestTimeout time.Duration

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per request and every unexpected error.
	Logger *slog.Logger
	// MailQueued is called after each transaction that queued mail
	// commits (Server.withTx), to wake the dispatcher at once. Optional.
	MailQueued func()
	// Metrics, when set, observes requests and serves /metrics.
	Metrics Metrics
	// HideMetrics makes /metrics answer 404: the metrics are served
	// on a listener of their own, away from the API's clients.
	HideMetrics bool

	// BrandName names the service on every page; default "useremail".
	BrandName string
	// AppURL is the operator's app: the pages' "back to the app" links and
	// where a person goes after signing in. Optional.
	AppURL string
	// TemplateDir, when set, holds pages/<name>.html files that replace
	// the embedded page templates of the same name (docs/TEMPLATES.md).
	TemplateDir string
	// Catalog holds the pages' words in each language; nil means
	// locale.Default().
	Catalog *locale.Catalog
	// Mailbox, in dev mode only, is the mailbox that /dev/mailbox/ shows;
	// nil answers 404 there.
	Mailbox *mail.Mailbox
}

// Metrics is what the server reports to, and what serves /metrics.
type Metrics interface {
	// ObserveRequest records one answered request; route is the spec's path
	// template ("unmatched" for paths outside it).
	ObserveRequest(method, route string, status int, elapsed time.Duration)
	// RateLimited records a request refused by the named limit.
	RateLimited(rule string)
	// WriteText writes every metric in the Prometheus text format.
	WriteText(w io.Writer) error
}

// Rules are the abuse limits of the contract. Those per client network
// (ratelimit.Network) bound what one client can make the service do for
// addresses it does not own: hash passwords, and answer email_taken.
type Rules struct {
	Manage        ratelimit.Rule // email management per user
	Resend        ratelimit.Rule // verification mails per user and address
	MailCap       ratelimit.Rule // verification mails per address, across all users
	WrongPassword ratelimit.Rule // wrong passwords on email change per user
	LoginFailures ratelimit.Rule // failed logins per address and client network
	LoginNetwork  ratelimit.Rule // login attempts per client network
	SignUpNetwork ratelimit.Rule // sign-ups per client network
	// AddressNetwork counts the requests per client network that name an
	// address someone else may hold: adding one, asking for an email change.
	AddressNetwork ratelimit.Rule
	// ResetNetwork is for password-reset requests per client network.
	ResetNetwork ratelimit.Rule
	// ResetAddress counts the password-reset requests per address, held
	// by anyone or not.
	ResetAddress ratelimit.Rule
	// ResetMail is the resend interval of reset mails per address, apart
	// from the verification mails'.
	ResetMail ratelimit.Rule
}

// The limits' sizes. A NAT'd office or school shares one IPv4 address: the
// per-network limits let dozens of its people sign up and log in at once.
const (
	// DailyMailsPerAddress caps the verification mails to one address a
	// day, across all users.
	DailyMailsPerAddress = 10
	// LoginsPerNetwork is per minute; SignUpsPerNetwork,
	// AddressesPerNetwork and ResetsPerNetwork are per hour.
	LoginsPerNetwork    = 60
	SignUpsPerNetwork   = 30
	AddressesPerNetwork = 60
	ResetsPerNetwork    = 30
	// ResetsPerAddress is per 15 minutes.
	ResetsPerAddress = 10
)

// Server implements gen.StrictServerInterface.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	sessions *session.Manager
	limiter  *ratelimit.Limiter
	rules    Rules

	ipExtractor echo.IPExtractor

	router          routers.Router
	validateOptions openapi3filter.Options
	trustedOrigins  map[string]bool
	corsOrigins     map[string]bool // the configured TrustedOrigins
	pages           *pages.Renderer
	pageCSP         string
	catalog         *locale.Catalog
	echo            *echo.Echo // the handler of Handler, for callAPI
	verifyLinks     linkKind
	primaryLinks    linkKind
}

var _ gen.StrictServerInterface = (*Server)(nil)

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.Signer == nil || cfg.Hasher == nil {
		return nil, errors.New("server: DB, Signer and Hasher are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Sessions == (session.Policy{}) {
		cfg.Sessions = session.DefaultPolicy
	}
	cfg.VerifyTTL = cmp.Or(max(cfg.VerifyTTL, 0), 72*time.Hour)
	cfg.ChangeTTL = cmp.Or(max(cfg.ChangeTTL, 0), 24*time.Hour)
	cfg.ResetTTL = cmp.Or(max(cfg.ResetTTL, 0), time.Hour)
	cfg.MaxEmails = cmp.Or(max(cfg.MaxEmails, 0), 10)
	cfg.BodyLimit = cmp.Or(max(cfg.BodyLimit, 0), 64<<10)
	cfg.RequestTimeout = cmp.Or(max(cfg.RequestTimeout, 0), DefaultRequestTimeout)
	if cfg.MailQueued == nil {
		cfg.MailQueued = func() {}
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || (public.Scheme != "http" && public.Scheme != "https") || public.Host == "" {
		return nil, fmt.Errorf("server: public URL %q: want http(s)://host[:port]", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")

	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("server: embedded spec: %w", err)
	}
	spec.Servers = nil // match paths on any host
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("server: spec router: %w", err)
	}
	cfg.BrandName = cmp.Or(strings.TrimSpace(cfg.BrandName), "useremail")
	if cfg.AppURL != "" {
		if app, err := url.Parse(cfg.AppURL); err != nil || (app.Scheme != "http" && app.Scheme != "https") || app.Host == "" {
			return nil, fmt.Errorf("server: app URL %q: want http(s)://host[:port][/path]", cfg.AppURL)
		}
	}
	if cfg.Catalog == nil {
		cfg.Catalog = locale.Default()
	}
	renderer, err := pages.New(cfg.TemplateDir)
	if err != nil {
		return nil, err
	}

	s := &Server{
		cfg:             cfg,
		log:             cfg.Logger,
		now:             func() time.Time { return cfg.Now().UTC() },
		sessions:        session.NewManager(cfg.DB, cfg.Sessions, cfg.Now),
		limiter:         ratelimit.New(cfg.Now),
		router:          router,
		validateOptions: validationOptions(),
		trustedOrigins:  map[string]bool{originOf(cfg.PublicURL): true},
		corsOrigins:     map[string]bool{},
		pages:           renderer,
		catalog:         cfg.Catalog,
	}
	for _, o := range cfg.TrustedOrigins {
		if origin := originOf(o); origin != "" {
			s.trustedOrigins[origin] = true
			s.corsOrigins[origin] = true
		}
	}
	formTargets := []string{originOf(cfg.AppURL)}
	for o := range s.trustedOrigins {
		formTargets = append(formTargets, o)
	}
	slices.Sort(formTargets)
	s.pageCSP = pages.CSP(formTargets...)
	s.verifyLinks, s.primaryLinks = s.newLinkKinds()
	s.rules = newRules(cfg)
	s.ipExtractor = ipExtractor(cfg.TrustedProxies)
	return s, nil
}

// newRules returns the limits cfg turns on; the others stay off (zero).
func newRules(cfg Config) Rules {
	var r Rules
	if cfg.ResendInterval > 0 {
		r.Resend = ratelimit.Rule{Name: "resend", Limit: 1, Period: cfg.ResendInterval}
		r.MailCap = ratelimit.Rule{Name: "mailcap", Limit: DailyMailsPerAddress, Period: 24 * time.Hour}
		r.ResetMail = ratelimit.Rule{Name: "reset-mail", Limit: 1, Period: cfg.ResendInterval}
	}
	if cfg.RateLimits {
		r.Manage = ratelimit.Rule{Name: "manage", Limit: 10, Period: time.Minute}
		r.WrongPassword = ratelimit.Rule{Name: "password", Limit: 5, Period: 15 * time.Minute}
		r.LoginFailures = ratelimit.Rule{Name: "login", Limit: 10, Period: time.Minute}
		r.LoginNetwork = ratelimit.Rule{Name: "login-net", Limit: LoginsPerNetwork, Period: time.Minute}
		r.SignUpNetwork = ratelimit.Rule{Name: "signup-net", Limit: SignUpsPerNetwork, Period: time.Hour}
		r.AddressNetwork = ratelimit.Rule{Name: "address-net", Limit: AddressesPerNetwork, Period: time.Hour}
		r.ResetNetwork = ratelimit.Rule{Name: "reset-net", Limit: ResetsPerNetwork, Period: time.Hour}
		r.ResetAddress = ratelimit.Rule{Name: "reset", Limit: ResetsPerAddress, Period: 15 * time.Minute}
	}
	return r
}

// ipExtractor finds a request's client address: the peer, or behind the
// trusted proxies the first untrusted hop of X-Forwarded-For from the
// right. Echo's extractor trusts loopback, link-local and private peers by
// default; only the configured networks are trusted here.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(ipNet(p)))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// ipNet converts p for Echo; an IPv4-mapped IPv6 prefix becomes the IPv4
// one it stands for, which is how net.IP compares IPv4 peers.
func ipNet(p netip.Prefix) *net.IPNet {
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
}

// withTx runs fn in one transaction (store.DB.WithTx) and, once it has
// committed, calls Config.MailQueued if fn queued mail: every handler
// writes through it, so none has to know whether its path queued any.
func (s *Server) withTx(ctx context.Context, fn func(q *store.Queries) error) error {
	var last *store.Queries // the attempt that committed, as WithTx may retry
	err := s.cfg.DB.WithTx(ctx, func(q *store.Queries) error {
		last = q
		return fn(q)
	})
	if err == nil && last.QueuedMail() {
		s.cfg.MailQueued()
	}
	return err
}

// userTx runs fn in one transaction (withTx) that locks user id's row
// before anything else: what fn reads of the user's addresses stays as it
// saw it until the commit.
func (s *Server) userTx(ctx context.Context, userID int64, fn func(q *store.Queries, user store.User) error) error {
	return s.withTx(ctx, func(q *store.Queries) error {
		user, err := q.LockUser(ctx, userID)
		if err != nil {
			return err
		}
		return fn(q, user)
	})
}

// originOf returns scheme://host[:port] of a URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// Handler returns the HTTP handler of the whole service: the API of
// openapi.yaml, Swagger UI at /docs/, and whatever extra routes extend
// registers.
func (s *Server) Handler(extend ...func(e *echo.Echo)) http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// Client addresses for the audit trail, the limits and the log: the
	// peer, or what the trusted proxies forward (Config.TrustedProxies).
	e.IPExtractor = s.ipExtractor
	// The request's facts and log line (request.go), panics, the deadline
	// (timeout.go), CORS (cors.go), the spec's checks (validate.go,
	// authn.go).
	e.Use(s.begin, recoverPanic, s.deadline, s.cors, s.validate)
	gen.RegisterHandlers(e, gen.NewStrictHandler(s, nil))
	s.registerDocs(e)
	s.registerAccount(e)
	s.echo = e
	for _, f := range extend {
		f(e)
	}
	return e
}

// recoverPanic turns a panic in a handler into a 500 answer; the process
// keeps serving.
func recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return next(c)
	}
}
