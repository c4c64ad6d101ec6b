package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	goodSecret = "0123456789abcdef0123456789abcdef-config-test"
	goodSMTP   = "smtp://mail.example.com:587"
)

// getenv returns a getenv over env; a secret and an SMTP URL are set
// unless env says otherwise (an empty value is the same as unset).
func getenv(env map[string]string) func(string) string {
	return func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		switch name {
		case "USEREMAIL_SECRET_KEYS":
			return goodSecret
		case "USEREMAIL_SMTP_URL":
			return goodSMTP
		}
		return ""
	}
}

func TestConfigValid(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c config)
	}{
		{"defaults", nil, func(t *testing.T, c config) {
			if c.Addr != "127.0.0.1:8080" || c.DatabaseURL != "sqlite:useremail.db" || c.PublicURL != "http://127.0.0.1:8080" {
				t.Errorf("addr %q, database %q, public URL %q", c.Addr, c.DatabaseURL, c.PublicURL)
			}
			if c.ResetTTL != time.Hour {
				t.Errorf("reset TTL %v, want 1h", c.ResetTTL)
			}
			if c.VerifyTTL != 72*time.Hour || c.ChangeTTL != 24*time.Hour || c.ResendInterval != 3*time.Minute || c.ShutdownGrace != 20*time.Second {
				t.Errorf("durations: verify %v, change %v, resend %v, grace %v", c.VerifyTTL, c.ChangeTTL, c.ResendInterval, c.ShutdownGrace)
			}
			if !c.CookieSecure || !c.RateLimits || !c.Notices || c.Dev || c.MaxEmails != 10 {
				t.Errorf("secure %v, rate limits %v, notices %v, dev %v, max emails %d", c.CookieSecure, c.RateLimits, c.Notices, c.Dev, c.MaxEmails)
			}
			if c.LogFormat != "json" || c.LogLevel != "info" || c.SMTPURL != goodSMTP || c.MailFrom != "useremail@localhost" {
				t.Errorf("log %s/%s, smtp %q, from %q", c.LogFormat, c.LogLevel, c.SMTPURL, c.MailFrom)
			}
			if c.OutboxRetention != 720*time.Hour || c.MetricsAddr != "" {
				t.Errorf("outbox retention %v, metrics addr %q", c.OutboxRetention, c.MetricsAddr)
			}
			if len(c.SecretKeys) != 1 || string(c.SecretKeys[0]) != goodSecret {
				t.Errorf("secret keys %q", c.SecretKeys)
			}
		}},
		{"dev mode needs no secret", map[string]string{"USEREMAIL_DEV": "true", "USEREMAIL_SECRET_KEYS": ""}, func(t *testing.T, c config) {
			if !c.Dev || c.CookieSecure || c.LogFormat != "text" || len(c.SecretKeys) != 0 {
				t.Errorf("dev %v, secure %v, log format %s, keys %d", c.Dev, c.CookieSecure, c.LogFormat, len(c.SecretKeys))
			}
		}},
		{"dev mode takes a short secret", map[string]string{"USEREMAIL_DEV": "1", "USEREMAIL_SECRET_KEYS": "short"}, func(t *testing.T, c config) {
			if len(c.SecretKeys) != 1 {
				t.Errorf("keys %q", c.SecretKeys)
			}
		}},
		{"dev mode needs no SMTP URL", map[string]string{"USEREMAIL_DEV": "true", "USEREMAIL_SMTP_URL": ""}, func(t *testing.T, c config) {
			if c.SMTPURL != "" {
				t.Errorf("smtp %q", c.SMTPURL)
			}
		}},
		{"dev mode takes a placeholder secret", map[string]string{"USEREMAIL_DEV": "true", "USEREMAIL_SECRET_KEYS": "change-me-to-a-long-random-secret-of-48-characters"}, func(t *testing.T, c config) {
			if len(c.SecretKeys) != 1 {
				t.Errorf("keys %q", c.SecretKeys)
			}
		}},
		{"outbox kept for ever, metrics apart", map[string]string{"USEREMAIL_OUTBOX_RETENTION": "0", "USEREMAIL_METRICS_ADDR": "0.0.0.0:9090"}, func(t *testing.T, c config) {
			if c.OutboxRetention != 0 || c.MetricsAddr != "0.0.0.0:9090" {
				t.Errorf("outbox retention %v, metrics addr %q", c.OutboxRetention, c.MetricsAddr)
			}
		}},
		{"outbox kept a week", map[string]string{"USEREMAIL_OUTBOX_RETENTION": "168h"}, func(t *testing.T, c config) {
			if c.OutboxRetention != 168*time.Hour {
				t.Errorf("outbox retention %v", c.OutboxRetention)
			}
		}},
		{"several secrets, first signs", map[string]string{"USEREMAIL_SECRET_KEYS": " " + goodSecret + "-new , " + goodSecret + " ,"}, func(t *testing.T, c config) {
			if len(c.SecretKeys) != 2 || string(c.SecretKeys[0]) != goodSecret+"-new" {
				t.Errorf("keys %q", c.SecretKeys)
			}
		}},
		{"booleans in their spellings", map[string]string{"USEREMAIL_COOKIE_SECURE": "no", "USEREMAIL_NOTICES": "OFF", "USEREMAIL_DEV": "0"}, func(t *testing.T, c config) {
			if c.CookieSecure || c.Notices || c.Dev {
				t.Errorf("secure %v, notices %v, dev %v", c.CookieSecure, c.Notices, c.Dev)
			}
		}},
		{"booleans true", map[string]string{"USEREMAIL_COOKIE_SECURE": "YES", "USEREMAIL_NOTICES": "1"}, func(t *testing.T, c config) {
			if !c.CookieSecure || !c.Notices {
				t.Errorf("secure %v, notices %v", c.CookieSecure, c.Notices)
			}
		}},
		{"no trusted proxies", nil, func(t *testing.T, c config) {
			if len(c.TrustedProxies) != 0 {
				t.Errorf("trusted proxies %v", c.TrustedProxies)
			}
		}},
		{"trusted proxies", map[string]string{"USEREMAIL_TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,fd00::1/8,2001:db8::5,"}, func(t *testing.T, c config) {
			got := fmt.Sprint(c.TrustedProxies)
			if want := "[10.0.0.0/8 192.0.2.7/32 fd00::/8 2001:db8::5/128]"; got != want {
				t.Errorf("trusted proxies %s, want %s", got, want)
			}
		}},
		{"rate limits off", map[string]string{"USEREMAIL_RATE_LIMITS": "off"}, func(t *testing.T, c config) {
			if c.RateLimits {
				t.Error("rate limits on")
			}
		}},
		{"rate limits OFF", map[string]string{"USEREMAIL_RATE_LIMITS": "OFF"}, func(t *testing.T, c config) {
			if c.RateLimits {
				t.Error("rate limits on")
			}
		}},
		{"rate limits on", map[string]string{"USEREMAIL_RATE_LIMITS": "on"}, func(t *testing.T, c config) {
			if !c.RateLimits {
				t.Error("rate limits off")
			}
		}},
		{"rate limits false", map[string]string{"USEREMAIL_RATE_LIMITS": "false"}, func(t *testing.T, c config) {
			if c.RateLimits {
				t.Error("rate limits on")
			}
		}},
		{"max emails bounds", map[string]string{"USEREMAIL_MAX_EMAILS": "1000"}, func(t *testing.T, c config) {
			if c.MaxEmails != 1000 {
				t.Errorf("max emails %d", c.MaxEmails)
			}
		}},
		{"max emails one", map[string]string{"USEREMAIL_MAX_EMAILS": " 1 "}, func(t *testing.T, c config) {
			if c.MaxEmails != 1 {
				t.Errorf("max emails %d", c.MaxEmails)
			}
		}},
		{"empty is unset", map[string]string{"USEREMAIL_MAX_EMAILS": "", "USEREMAIL_VERIFY_TTL": "  ", "USEREMAIL_RATE_LIMITS": ""}, func(t *testing.T, c config) {
			if c.MaxEmails != 10 || c.VerifyTTL != 72*time.Hour || !c.RateLimits {
				t.Errorf("max emails %d, verify TTL %v, rate limits %v", c.MaxEmails, c.VerifyTTL, c.RateLimits)
			}
		}},
		{"durations", map[string]string{"USEREMAIL_VERIFY_TTL": "90m", "USEREMAIL_CHANGE_TTL": "1h30m", "USEREMAIL_RESET_TTL": "15m", "USEREMAIL_RESEND_INTERVAL": "0", "USEREMAIL_SHUTDOWN_GRACE": "45s"}, func(t *testing.T, c config) {
			if c.ResetTTL != 15*time.Minute {
				t.Errorf("reset TTL %v, want 15m", c.ResetTTL)
			}
			if c.VerifyTTL != 90*time.Minute || c.ChangeTTL != 90*time.Minute || c.ResendInterval != 0 || c.ShutdownGrace != 45*time.Second {
				t.Errorf("verify %v, change %v, resend %v, grace %v", c.VerifyTTL, c.ChangeTTL, c.ResendInterval, c.ShutdownGrace)
			}
		}},
		{"postgres", map[string]string{"USEREMAIL_DATABASE_URL": "postgres://u:p@db:5432/useremail?sslmode=require", "USEREMAIL_ADDR": "0.0.0.0:8080",
			"USEREMAIL_PUBLIC_URL": "https://accounts.example.com/", "USEREMAIL_SMTP_URL": "smtp://u:p@mail.example.com:587"}, func(t *testing.T, c config) {
			if c.PublicURL != "https://accounts.example.com" {
				t.Errorf("public URL %q", c.PublicURL)
			}
		}},
		{"branding", map[string]string{"USEREMAIL_BRAND_NAME": " ACME ", "USEREMAIL_APP_URL": "https://app.example.com/home", "USEREMAIL_TEMPLATE_DIR": "."}, func(t *testing.T, c config) {
			if c.BrandName != "ACME" || c.AppURL != "https://app.example.com/home" || c.TemplateDir != "." {
				t.Errorf("brand %q, app %q, templates %q", c.BrandName, c.AppURL, c.TemplateDir)
			}
		}},
		{"webhooks", map[string]string{"USEREMAIL_WEBHOOK_URLS": "https://app.example.com/hooks, http://10.0.0.5:8000/useremail?src=1",
			"USEREMAIL_WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_" + strings.Repeat("QUFB", 21) + "QQ=="}, func(t *testing.T, c config) {
			if len(c.WebhookURLs) != 2 || c.WebhookURLs[1] != "http://10.0.0.5:8000/useremail?src=1" || len(c.WebhookSecrets) != 2 {
				t.Errorf("webhook URLs %q, %d secrets", c.WebhookURLs, len(c.WebhookSecrets))
			}
		}},
		{"argon2 and logs", map[string]string{"USEREMAIL_ARGON2": "m=64,t=1,p=1", "USEREMAIL_LOG_LEVEL": "DEBUG", "USEREMAIL_LOG_FORMAT": "text"}, func(t *testing.T, c config) {
			if c.Argon2.Memory != 64 || c.Argon2.Iterations != 1 || c.LogLevel != "debug" || c.LogFormat != "text" {
				t.Errorf("argon2 %+v, log %s/%s", c.Argon2, c.LogLevel, c.LogFormat)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(getenv(tt.env))
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		// want has one entry per problem line, in order: the substrings
		// that line must hold.
		want [][]string
	}{
		{"missing secret outside dev mode", map[string]string{"USEREMAIL_SECRET_KEYS": ""},
			[][]string{{"USEREMAIL_SECRET_KEYS:", "required outside dev mode", "openssl rand"}}},
		{"short secret", map[string]string{"USEREMAIL_SECRET_KEYS": "too-short"},
			[][]string{{"USEREMAIL_SECRET_KEYS:", "at least 32 characters", "one has 9"}}},
		{"one short secret among good ones", map[string]string{"USEREMAIL_SECRET_KEYS": goodSecret + ",short"},
			[][]string{{"USEREMAIL_SECRET_KEYS:", "one has 5"}}},
		{"the compose file's old example secret", map[string]string{"USEREMAIL_SECRET_KEYS": "change-me-to-a-long-random-secret-of-48-characters"},
			[][]string{{"USEREMAIL_SECRET_KEYS:", `contains "changeme"`, "placeholder", "openssl rand"}}},
		{"a placeholder beside a good secret", map[string]string{"USEREMAIL_SECRET_KEYS": goodSecret + ", REPLACE_ME_WITH_A_REAL_SECRET_OF_32_CHARS"},
			[][]string{{"USEREMAIL_SECRET_KEYS:", `contains "replaceme"`}}},
		{"a secret of one character", map[string]string{"USEREMAIL_SECRET_KEYS": strings.Repeat("x", 48)},
			[][]string{{"USEREMAIL_SECRET_KEYS:", "only 1 different characters"}}},
		{"a secret of a few characters", map[string]string{"USEREMAIL_SECRET_KEYS": strings.Repeat("abc123", 8)},
			[][]string{{"USEREMAIL_SECRET_KEYS:", "only 6 different characters"}}},
		{"no SMTP URL outside dev mode", map[string]string{"USEREMAIL_SMTP_URL": ""},
			[][]string{{"USEREMAIL_SMTP_URL:", "required outside dev mode"}}},
		{"bad app URL", map[string]string{"USEREMAIL_APP_URL": "app.example.com"},
			[][]string{{"USEREMAIL_APP_URL:", "http(s)://"}}},
		{"brand with a control character", map[string]string{"USEREMAIL_BRAND_NAME": "AC\x01ME"},
			[][]string{{"USEREMAIL_BRAND_NAME:", "control characters"}}},
		{"template dir that is not there", map[string]string{"USEREMAIL_TEMPLATE_DIR": "/no/such/dir"},
			[][]string{{"USEREMAIL_TEMPLATE_DIR:", "not a directory"}}},
		{"webhook URLs without secrets", map[string]string{"USEREMAIL_WEBHOOK_URLS": "https://app.example.com/hooks"},
			[][]string{{"USEREMAIL_WEBHOOK_SECRETS:", "required when USEREMAIL_WEBHOOK_URLS is set", "openssl rand"}}},
		{"bad webhook URL", map[string]string{"USEREMAIL_WEBHOOK_URLS": "ftp://app.example.com/hooks,https://u:p@app.example.com/",
			"USEREMAIL_WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			[][]string{{"USEREMAIL_WEBHOOK_URLS:", "ftp://"}, {"USEREMAIL_WEBHOOK_URLS:", "u:xxxxx@", "without credentials"}}},
		{"bad webhook secrets", map[string]string{"USEREMAIL_WEBHOOK_SECRETS": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,whsec_c2hvcnQ="},
			[][]string{{"USEREMAIL_WEBHOOK_SECRETS:", "secret 1", "whsec_"}, {"USEREMAIL_WEBHOOK_SECRETS:", "secret 2", "24 to 64 bytes, not 5"}}},
		{"bad metrics address", map[string]string{"USEREMAIL_METRICS_ADDR": "9090"},
			[][]string{{"USEREMAIL_METRICS_ADDR:", "host:port"}}},
		{"bad outbox retention", map[string]string{"USEREMAIL_OUTBOX_RETENTION": "30 days"},
			[][]string{{"USEREMAIL_OUTBOX_RETENTION:", "not a duration"}}},
		{"negative outbox retention", map[string]string{"USEREMAIL_OUTBOX_RETENTION": "-1h"},
			[][]string{{"USEREMAIL_OUTBOX_RETENTION:", "must be positive"}}},
		{"unknown database", map[string]string{"USEREMAIL_DATABASE_URL": "mysql://db/useremail"},
			[][]string{{"USEREMAIL_DATABASE_URL:", "postgres://", "sqlite:PATH"}}},
		{"sqlite without a path", map[string]string{"USEREMAIL_DATABASE_URL": "sqlite:"},
			[][]string{{"USEREMAIL_DATABASE_URL:", "file path"}}},
		{"malformed postgres URL", map[string]string{"USEREMAIL_DATABASE_URL": "postgres://db:5432/%zz"},
			[][]string{{"USEREMAIL_DATABASE_URL:"}}},
		{"database URL password stays hidden", map[string]string{"USEREMAIL_DATABASE_URL": "mysql://u:hunter2@db/x"},
			[][]string{{"USEREMAIL_DATABASE_URL:", "xxxxx"}}},
		{"bad TTL", map[string]string{"USEREMAIL_VERIFY_TTL": "3 days"},
			[][]string{{"USEREMAIL_VERIFY_TTL:", `"3 days" is not a duration`}}},
		{"negative TTL", map[string]string{"USEREMAIL_CHANGE_TTL": "-1h"},
			[][]string{{"USEREMAIL_CHANGE_TTL:", "must be positive"}}},
		{"zero TTL", map[string]string{"USEREMAIL_VERIFY_TTL": "0"},
			[][]string{{"USEREMAIL_VERIFY_TTL:", "must be positive"}}},
		{"zero grace", map[string]string{"USEREMAIL_SHUTDOWN_GRACE": "0s"},
			[][]string{{"USEREMAIL_SHUTDOWN_GRACE:", "must be positive"}}},
		{"bad session idle", map[string]string{"USEREMAIL_SESSION_IDLE": "forever"},
			[][]string{{"USEREMAIL_SESSION_IDLE:", "not a duration"}}},
		{"bad boolean", map[string]string{"USEREMAIL_COOKIE_SECURE": "maybe"},
			[][]string{{"USEREMAIL_COOKIE_SECURE:", `"maybe" is not a boolean`}}},
		{"bad dev boolean", map[string]string{"USEREMAIL_DEV": "2"},
			[][]string{{"USEREMAIL_DEV:", "not a boolean"}}},
		{"bad notices boolean", map[string]string{"USEREMAIL_NOTICES": "nope"},
			[][]string{{"USEREMAIL_NOTICES:", "not a boolean"}}},
		{"max emails zero", map[string]string{"USEREMAIL_MAX_EMAILS": "0"},
			[][]string{{"USEREMAIL_MAX_EMAILS:", "from 1 to 1000"}}},
		{"max emails too many", map[string]string{"USEREMAIL_MAX_EMAILS": "1001"},
			[][]string{{"USEREMAIL_MAX_EMAILS:", "from 1 to 1000"}}},
		{"max emails not a number", map[string]string{"USEREMAIL_MAX_EMAILS": "ten"},
			[][]string{{"USEREMAIL_MAX_EMAILS:", `"ten"`}}},
		{"rate limits neither on nor off", map[string]string{"USEREMAIL_RATE_LIMITS": "sometimes"},
			[][]string{{"USEREMAIL_RATE_LIMITS:", "on or off"}}},
		{"bad listen address", map[string]string{"USEREMAIL_ADDR": "localhost"},
			[][]string{{"USEREMAIL_ADDR:", "host:port"}}},
		{"bad debug address", map[string]string{"USEREMAIL_DEBUG_ADDR": "6060"},
			[][]string{{"USEREMAIL_DEBUG_ADDR:", "host:port"}}},
		{"public URL with a path", map[string]string{"USEREMAIL_PUBLIC_URL": "https://example.com/accounts"},
			[][]string{{"USEREMAIL_PUBLIC_URL:", "without a path"}}},
		{"public URL not http", map[string]string{"USEREMAIL_PUBLIC_URL": "ftp://example.com"},
			[][]string{{"USEREMAIL_PUBLIC_URL:"}}},
		{"trusted origin", map[string]string{"USEREMAIL_TRUSTED_ORIGINS": "https://app.example.com,app.example.com"},
			[][]string{{"USEREMAIL_TRUSTED_ORIGINS:", `"app.example.com"`}}},
		{"trusted origin star", map[string]string{"USEREMAIL_TRUSTED_ORIGINS": "*"},
			[][]string{{"USEREMAIL_TRUSTED_ORIGINS:", `"*"`}}},
		{"cookie domain", map[string]string{"USEREMAIL_COOKIE_DOMAIN": "example.com:8080"},
			[][]string{{"USEREMAIL_COOKIE_DOMAIN:", "not a domain name"}}},
		{"cookie domain beside the public URL", map[string]string{"USEREMAIL_PUBLIC_URL": "https://auth.example.com", "USEREMAIL_COOKIE_DOMAIN": "example.org"},
			[][]string{{"USEREMAIL_COOKIE_DOMAIN:", "does not contain the host"}}},
		{"trusted proxy", map[string]string{"USEREMAIL_TRUSTED_PROXIES": "10.0.0.0/8,10.0.0.0/33,proxy.internal,fe80::1%eth0"},
			[][]string{{"USEREMAIL_TRUSTED_PROXIES:", `"10.0.0.0/33"`}, {"USEREMAIL_TRUSTED_PROXIES:", `"proxy.internal"`}, {"USEREMAIL_TRUSTED_PROXIES:", `"fe80::1%eth0"`}}},
		{"smtp URL", map[string]string{"USEREMAIL_SMTP_URL": "http://mail.example.com"},
			[][]string{{"USEREMAIL_SMTP_URL:"}}},
		{"sender", map[string]string{"USEREMAIL_MAIL_FROM": "nobody"},
			[][]string{{"USEREMAIL_MAIL_FROM:", "not an email address"}}},
		{"argon2 cost", map[string]string{"USEREMAIL_ARGON2": "m=64,t=0,p=1"},
			[][]string{{"USEREMAIL_ARGON2:", "iterations 0 not in 1..100"}}},
		{"argon2 syntax", map[string]string{"USEREMAIL_ARGON2": "memory=64"},
			[][]string{{"USEREMAIL_ARGON2:"}}},
		{"log level", map[string]string{"USEREMAIL_LOG_LEVEL": "verbose"},
			[][]string{{"USEREMAIL_LOG_LEVEL:", "debug, info, warn or error"}}},
		{"log format", map[string]string{"USEREMAIL_LOG_FORMAT": "xml"},
			[][]string{{"USEREMAIL_LOG_FORMAT:", "json or text"}}},
		{"every problem at once, one line each", map[string]string{
			"USEREMAIL_SECRET_KEYS":     "",
			"USEREMAIL_DATABASE_URL":    "mysql://db",
			"USEREMAIL_VERIFY_TTL":      "soon",
			"USEREMAIL_COOKIE_SECURE":   "perhaps",
			"USEREMAIL_MAX_EMAILS":      "-3",
			"USEREMAIL_RATE_LIMITS":     "maybe",
			"USEREMAIL_RESEND_INTERVAL": "-1m",
		}, [][]string{
			{"USEREMAIL_DATABASE_URL:"},
			{"USEREMAIL_VERIFY_TTL:"},
			{"USEREMAIL_RESEND_INTERVAL:"},
			{"USEREMAIL_COOKIE_SECURE:"},
			{"USEREMAIL_RATE_LIMITS:"},
			{"USEREMAIL_MAX_EMAILS:"},
			{"USEREMAIL_SECRET_KEYS:"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(getenv(tt.env))
			if err == nil {
				t.Fatal("loadConfig accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if lines[0] != "configuration:" {
				t.Errorf("first line %q, want \"configuration:\"", lines[0])
			}
			problems := lines[1:]
			if len(problems) != len(tt.want) {
				t.Fatalf("%d problem lines, want %d:\n%v", len(problems), len(tt.want), err)
			}
			for i, want := range tt.want {
				for _, sub := range want {
					if !strings.Contains(problems[i], sub) {
						t.Errorf("problem %d %q does not say %q", i+1, problems[i], sub)
					}
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("a password in the message: %v", err)
			}
		})
	}
}

// TestRandomSecretsAreNoPlaceholders: secrets made as the documentation
// says (openssl rand -base64 48, or -hex 32) pass the placeholder check.
func TestRandomSecretsAreNoPlaceholders(t *testing.T) {
	for i := range 200 {
		raw := make([]byte, 48)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(raw[:32])} {
			if why := placeholder(secret); why != "" {
				t.Fatalf("random secret %d %s", i, why)
			}
		}
	}
}
