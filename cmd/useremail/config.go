package main

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/session"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/webhook"
)

// config is the service's configuration, read from USEREMAIL_* variables.
type config struct {
	Addr           string
	DatabaseURL    string
	SecretKeys     [][]byte
	PublicURL      string
	TrustedOrigins []string
	CookieDomain   string
	TrustedProxies []netip.Prefix
	SMTPURL        string
	MailFrom       string
	VerifyTTL      time.Duration
	ChangeTTL      time.Duration
	ResetTTL       time.Duration
	CookieSecure   bool
	MaxEmails      int
	ResendInterval time.Duration
	RateLimits     bool
	Notices        bool
	Dev            bool
	Sessions       session.Policy
	Argon2         password.Params
	LogLevel       string
	LogFormat      string
	ShutdownGrace  time.Duration
	DebugAddr      string // serve net/http/pprof here; empty: off
	// MetricsAddr serves /metrics on a listener of its own, and the API's
	// then answers 404 there; empty: on the API's listener.
	MetricsAddr string
	// OutboxRetention is how long sent and cancelled mail stays in the
	// outbox before the janitor deletes it; 0 keeps it for ever.
	OutboxRetention time.Duration
	// BrandName names the service in pages and mails; AppURL is the
	// operator's app (optional); TemplateDir holds templates that replace
	// the embedded ones by name (optional).
	BrandName   string
	AppURL      string
	TemplateDir string
	// WebhookURLs receive every event, signed with WebhookSecrets (the
	// first secret of USEREMAIL_WEBHOOK_SECRETS first).
	WebhookURLs    []string
	WebhookSecrets []string
}

// cookieDomainPattern is a DNS name of two labels or more.
var cookieDomainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// minSecretLen is the least length of a signing secret outside dev mode:
// 32 bytes, the size of the HMAC-SHA256 key it becomes.
const minSecretLen = 32

// minSecretDistinct is the least number of different characters in a
// signing secret outside dev mode. Random secrets have far more (hex has
// 16, base64 about 40 in 64 characters); a typed placeholder has fewer.
const minSecretDistinct = 10

// placeholderWords mark a signing secret as an example to be replaced, as
// the compose files' and the documentation's examples were
// ("change-me-to-a-long-random-secret-of-48-characters"). They are
// compared with the secret's letters and digits alone, lower-cased.
var placeholderWords = []string{"changeme", "replaceme", "yoursecret", "secretkeyhere", "placeholder", "example"}

// placeholder reports why secret looks like a placeholder rather than a
// random secret, or "" when it does not. The reason never quotes the
// secret.
func placeholder(secret string) string {
	var letters strings.Builder
	distinct := map[rune]bool{}
	for _, r := range secret {
		distinct[r] = true
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			letters.WriteRune(unicode.ToLower(r))
		}
	}
	for _, w := range placeholderWords {
		if strings.Contains(letters.String(), w) {
			return fmt.Sprintf("contains %q", w)
		}
	}
	if len(distinct) < minSecretDistinct {
		return fmt.Sprintf("has only %d different characters", len(distinct))
	}
	return ""
}

// configError is the list of a configuration's problems, one line each.
type configError struct{ problems []string }

func (e configError) Error() string {
	return "configuration:\n  " + strings.Join(e.problems, "\n  ")
}

// loadConfig reads the configuration from getenv. It reports every problem
// at once, one line each (a configError), so an operator fixes them in one
// go.
func loadConfig(getenv func(string) string) (config, error) {
	var problems []string
	bad := func(name, format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}
	env := func(name, def string) string {
		v, _ := lookup(getenv, name)
		return cmp.Or(v, def)
	}
	boolean := func(name string, def bool) bool {
		raw, ok := lookup(getenv, name)
		if !ok {
			return def
		}
		switch strings.ToLower(raw) {
		case "1", "true", "yes", "on":
			return true
		case "0", "false", "no", "off":
			return false
		}
		bad(name, "%q is not a boolean (use true or false)", raw)
		return def
	}
	duration := func(name string, def time.Duration, allowZero bool) time.Duration {
		raw, ok := lookup(getenv, name)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(raw)
		if raw == "0" {
			d, err = 0, nil
		}
		switch {
		case err != nil:
			bad(name, "%q is not a duration (use Go syntax, as 72h or 90m)", raw)
			return def
		case d < 0 || (d == 0 && !allowZero):
			bad(name, "%q must be positive", raw)
			return def
		}
		return d
	}

	c := config{LogFormat: "json"}
	c.Dev = boolean("USEREMAIL_DEV", false)
	c.Addr = env("USEREMAIL_ADDR", "127.0.0.1:8080")
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("USEREMAIL_ADDR", "%q is not host:port", c.Addr)
	}
	c.DebugAddr = env("USEREMAIL_DEBUG_ADDR", "")
	if _, _, err := net.SplitHostPort(c.DebugAddr); c.DebugAddr != "" && err != nil {
		bad("USEREMAIL_DEBUG_ADDR", "%q is not host:port", c.DebugAddr)
	}
	c.MetricsAddr = env("USEREMAIL_METRICS_ADDR", "")
	if _, _, err := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr != "" && err != nil {
		bad("USEREMAIL_METRICS_ADDR", "%q is not host:port", c.MetricsAddr)
	}
	c.DatabaseURL = env("USEREMAIL_DATABASE_URL", "sqlite:useremail.db")
	if _, _, err := store.ParseURL(c.DatabaseURL); err != nil {
		bad("USEREMAIL_DATABASE_URL", "%v", strings.TrimPrefix(err.Error(), "store: database URL "))
	}

	c.PublicURL = strings.TrimSuffix(env("USEREMAIL_PUBLIC_URL", "http://"+c.Addr), "/")
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		bad("USEREMAIL_PUBLIC_URL", "%q must be http(s)://host[:port] without a path", c.PublicURL)
	}
	for _, o := range splitList(env("USEREMAIL_TRUSTED_ORIGINS", "")) {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" {
			bad("USEREMAIL_TRUSTED_ORIGINS", "%q is not an origin (scheme://host[:port])", o)
			continue
		}
		c.TrustedOrigins = append(c.TrustedOrigins, o)
	}
	c.CookieDomain = strings.ToLower(strings.TrimPrefix(env("USEREMAIL_COOKIE_DOMAIN", ""), "."))
	if c.CookieDomain != "" {
		host := ""
		if u, err := url.Parse(c.PublicURL); err == nil {
			host = strings.ToLower(u.Hostname())
		}
		switch {
		case !cookieDomainPattern.MatchString(c.CookieDomain):
			bad("USEREMAIL_COOKIE_DOMAIN", "%q is not a domain name (example.com)", c.CookieDomain)
		case host != c.CookieDomain && !strings.HasSuffix(host, "."+c.CookieDomain):
			bad("USEREMAIL_COOKIE_DOMAIN", "%q does not contain the host of USEREMAIL_PUBLIC_URL (%s): browsers would refuse the cookies", c.CookieDomain, host)
		}
	}
	for _, raw := range splitList(env("USEREMAIL_TRUSTED_PROXIES", "")) {
		p, err := parseNetwork(raw)
		if err != nil {
			bad("USEREMAIL_TRUSTED_PROXIES", "%q is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address", raw)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}

	c.SMTPURL = env("USEREMAIL_SMTP_URL", "")
	switch {
	case c.SMTPURL != "":
		if _, err := mail.ParseSMTPURL(c.SMTPURL); err != nil {
			bad("USEREMAIL_SMTP_URL", "%v", err)
		}
	case !c.Dev:
		// Without a mail server the links would have nowhere to go but the
		// log, which must never hold them outside dev mode.
		bad("USEREMAIL_SMTP_URL", "is required outside dev mode (USEREMAIL_DEV=true, where mail goes to the log): smtp://[user:pass@]host:port")
	}
	c.BrandName = strings.TrimSpace(env("USEREMAIL_BRAND_NAME", "useremail"))
	if c.BrandName == "" || strings.IndexFunc(c.BrandName, unicode.IsControl) >= 0 || len(c.BrandName) > 100 {
		bad("USEREMAIL_BRAND_NAME", "%q must be a name of 1 to 100 characters without control characters", c.BrandName)
	}
	c.AppURL = env("USEREMAIL_APP_URL", "")
	if u, err := url.Parse(c.AppURL); c.AppURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		bad("USEREMAIL_APP_URL", "%q must be http(s)://host[:port][/path]", c.AppURL)
	}
	c.TemplateDir = env("USEREMAIL_TEMPLATE_DIR", "")
	if fi, err := os.Stat(c.TemplateDir); c.TemplateDir != "" && (err != nil || !fi.IsDir()) {
		bad("USEREMAIL_TEMPLATE_DIR", "%q is not a directory", c.TemplateDir)
	}
	c.MailFrom = env("USEREMAIL_MAIL_FROM", "useremail@localhost")
	if !strings.Contains(c.MailFrom, "@") {
		bad("USEREMAIL_MAIL_FROM", "%q is not an email address", c.MailFrom)
	}

	c.VerifyTTL = duration("USEREMAIL_VERIFY_TTL", 72*time.Hour, false)
	c.ChangeTTL = duration("USEREMAIL_CHANGE_TTL", 24*time.Hour, false)
	c.ResetTTL = duration("USEREMAIL_RESET_TTL", time.Hour, false)
	c.ResendInterval = duration("USEREMAIL_RESEND_INTERVAL", 3*time.Minute, true)
	c.Sessions = session.Policy{
		Idle:       duration("USEREMAIL_SESSION_IDLE", session.DefaultPolicy.Idle, false),
		Absolute:   duration("USEREMAIL_SESSION_MAX_AGE", session.DefaultPolicy.Absolute, false),
		TouchEvery: session.DefaultPolicy.TouchEvery,
	}
	c.ShutdownGrace = duration("USEREMAIL_SHUTDOWN_GRACE", 20*time.Second, false)
	c.OutboxRetention = duration("USEREMAIL_OUTBOX_RETENTION", 30*24*time.Hour, true)
	c.CookieSecure = boolean("USEREMAIL_COOKIE_SECURE", !c.Dev)
	c.Notices = boolean("USEREMAIL_NOTICES", true)
	switch raw := strings.ToLower(env("USEREMAIL_RATE_LIMITS", "on")); raw {
	case "on", "true":
		c.RateLimits = true
	case "off", "false":
	default:
		bad("USEREMAIL_RATE_LIMITS", "%q must be on or off", raw)
	}
	c.MaxEmails = 10
	if raw, ok := lookup(getenv, "USEREMAIL_MAX_EMAILS"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 1000 {
			bad("USEREMAIL_MAX_EMAILS", "%q must be a whole number from 1 to 1000", raw)
		} else {
			c.MaxEmails = n
		}
	}
	c.Argon2 = password.DefaultParams
	if raw, ok := lookup(getenv, "USEREMAIL_ARGON2"); ok {
		p, err := parseArgon2(raw)
		if err != nil {
			bad("USEREMAIL_ARGON2", "%v", err)
		} else {
			c.Argon2 = p
		}
	}
	c.LogLevel = strings.ToLower(env("USEREMAIL_LOG_LEVEL", "info"))
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("USEREMAIL_LOG_LEVEL", "%q must be debug, info, warn or error", c.LogLevel)
	}
	if c.Dev {
		c.LogFormat = "text"
	}
	c.LogFormat = strings.ToLower(env("USEREMAIL_LOG_FORMAT", c.LogFormat))
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("USEREMAIL_LOG_FORMAT", "%q must be json or text", c.LogFormat)
	}

	for _, k := range splitList(env("USEREMAIL_SECRET_KEYS", "")) {
		switch why := placeholder(k); {
		case c.Dev:
		case len(k) < minSecretLen:
			bad("USEREMAIL_SECRET_KEYS", "every secret needs at least %d characters (one has %d); generate one with: openssl rand -base64 48", minSecretLen, len(k))
		case why != "":
			bad("USEREMAIL_SECRET_KEYS", "a secret that %s is a placeholder, not a random secret; generate one with: openssl rand -base64 48", why)
		}
		c.SecretKeys = append(c.SecretKeys, []byte(k))
	}
	if len(c.SecretKeys) == 0 && !c.Dev {
		bad("USEREMAIL_SECRET_KEYS", "is required outside dev mode (USEREMAIL_DEV=true); generate one with: openssl rand -base64 48")
	}

	for _, raw := range splitList(env("USEREMAIL_WEBHOOK_URLS", "")) {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
			bad("USEREMAIL_WEBHOOK_URLS", "%q must be an http(s) URL without credentials or a fragment", redactedURL(raw))
			continue
		}
		c.WebhookURLs = append(c.WebhookURLs, raw)
	}
	for i, raw := range splitList(env("USEREMAIL_WEBHOOK_SECRETS", "")) {
		if _, err := webhook.ParseSecret(raw); err != nil {
			// The reason never quotes the secret.
			bad("USEREMAIL_WEBHOOK_SECRETS", "secret %d: %v; generate one with: echo whsec_$(openssl rand -base64 32)", i+1, strings.TrimPrefix(err.Error(), "webhook: "))
			continue
		}
		c.WebhookSecrets = append(c.WebhookSecrets, raw)
	}
	if len(c.WebhookURLs) > 0 && len(c.WebhookSecrets) == 0 {
		bad("USEREMAIL_WEBHOOK_SECRETS", "is required when USEREMAIL_WEBHOOK_URLS is set: whsec_ and the base64 of 24 to 64 random bytes; generate one with: echo whsec_$(openssl rand -base64 32)")
	}

	if len(problems) > 0 {
		return c, configError{problems}
	}
	return c, nil
}

// redactedURL hides the password of a URL in a problem; one that does not
// parse is named by its scheme alone.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		scheme, _, _ := strings.Cut(raw, ":")
		return scheme + ":…"
	}
	return u.Redacted()
}

// lookup reads a variable; set to the empty string counts as unset.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	return v, v != ""
}

func splitList(raw string) []string {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseNetwork reads a CIDR, or an IP address as the network of that one
// address.
func parseNetwork(raw string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(raw); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(raw)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a network", raw)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseArgon2 reads "m=19456,t=2,p=2" (memory in KiB).
func parseArgon2(raw string) (password.Params, error) {
	p := password.DefaultParams
	for _, part := range strings.Split(raw, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return p, fmt.Errorf("%q: want m=KiB,t=N,p=N", raw)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Iterations = uint32(n)
		case "p":
			p.Parallelism = uint8(min(n, 255))
		default:
			return p, fmt.Errorf("%q: unknown parameter %q", raw, k)
		}
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%q: %v", raw, err)
	}
	return p, nil
}

// devSecret returns the dev-mode signing secret, kept beside the SQLite
// file (or in the working directory for PostgreSQL) so that links keep
// working across restarts; it is created on first use.
func devSecret(databaseURL string) ([]byte, string, error) {
	path := "useremail-dev.secret"
	if dbPath, ok := sqlitePath(databaseURL); ok {
		path = filepath.Join(filepath.Dir(dbPath), filepath.Base(dbPath)+".secret")
	}
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return []byte(s), path, nil
		}
	}
	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		return nil, path, err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, path, fmt.Errorf("dev secret: %w", err)
	}
	return []byte(secret), path, nil
}

// sqlitePath returns the file of an SQLite database URL (one that
// store.ParseURL accepts); ok is false for any other database.
func sqlitePath(databaseURL string) (path string, ok bool) {
	if dialect, _, err := store.ParseURL(databaseURL); err != nil || dialect != store.SQLite {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite:"), "//"), true
}
