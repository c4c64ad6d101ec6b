package mail

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/webhook"
)

// Config configures a Dispatcher. DB, Signer, Sender and PublicURL are
// required; every other field has a default.
type Config struct {
	DB     *store.DB
	Signer *signer.Signer
	Sender Sender

	// PublicURL is the base URL put in links, as https://mail.example.com.
	PublicURL string
	// From is the sender address, with or without a display name; default
	// useremail@localhost. Without a display name ProductName is used.
	From string
	// ProductName names the service in mails; default "useremail".
	ProductName string
	// Catalog holds the mails' words in each language; nil means
	// locale.Default().
	Catalog *locale.Catalog
	// TemplateDir, when set, holds mail/<name> files that replace the
	// embedded templates of the same name (docs/TEMPLATES.md).
	TemplateDir string
	// VerifyTTL and ChangeTTL are the max ages of verify and set-primary
	// links (defaults 72h and 24h). They only word the mails ("This link
	// expires in 3 days."): the handlers that check links must use the
	// same values.
	VerifyTTL, ChangeTTL time.Duration
	// ResetTTL is the max age of password reset links (default 1h), for
	// the mails' wording as above.
	ResetTTL time.Duration
	// ResetRequestURL is where the notices send a person who did not make
	// the change to ask for a password reset; default PublicURL +
	// DefaultResetRequestPath.
	ResetRequestURL string

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BatchSize is how many messages one claim takes; default 50.
	BatchSize int
	// Workers is how many mails of a batch are sent at once; default 4.
	Workers int
	// Lease is how long a claim lasts before another dispatcher may take the
	// message over; default 2m. It must exceed SendTimeout by at least 10 s.
	// A report of an outcome that the database does not take is tried
	// again until 2 s before the lease ends. The claims of a dispatcher
	// that died end sooner (see Run): the lease is for one that hangs.
	Lease time.Duration
	// SendTimeout bounds one send; default 1m. With an SMTPSender it should
	// exceed its connect and command timeouts together (40 s by default).
	SendTimeout time.Duration
	// MaxAttempts is how many attempts a message gets before it is marked
	// failed; default 8.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the delay before a retry: a random
	// duration up to BackoffBase·2^(attempt-1), capped at BackoffMax
	// (exponential backoff with full jitter); defaults 10s and 1h.
	BackoffBase, BackoffMax time.Duration
	// PollInterval is how long Run sleeps when there is nothing to send;
	// default 1s. Wake and PostgreSQL notifications cut the sleep short.
	PollInterval time.Duration
	// ListenURL, a postgres:// URL, makes Run LISTEN for the notifications
	// that announce queued mail (Announcer, store.NotifyMailQueued); empty
	// means polling only.
	ListenURL string

	// Webhooks, when set, makes the dispatcher deliver events as well
	// (see events.go), with this client.
	Webhooks *webhook.Client
	// WebhookSchedule is the delay before each retry of an event's
	// delivery; default DefaultWebhookSchedule.
	WebhookSchedule []time.Duration

	// Logger receives one record per outcome; nil means slog.Default().
	Logger *slog.Logger
	// Hooks are called on each recorded outcome, for metrics.
	Hooks Hooks
}

// Hooks are optional callbacks, called with the message's kind each time an
// outcome is recorded in the outbox (a late report whose lease was taken
// over records nothing and calls nothing). They must be fast and safe for
// concurrent use.
type Hooks struct {
	OnSent   func(kind string) // delivered
	OnRetry  func(kind string) // temporary failure, rescheduled
	OnFailed func(kind string) // given up: permanent failure, attempts used up, or unrenderable

	// The same for event deliveries, called with the event's type.
	OnDelivered      func(eventType string) // a 2xx from the endpoint
	OnDeliveryRetry  func(eventType string) // a failed attempt, rescheduled
	OnDeliveryFailed func(eventType string) // given up: 410, attempts used up, or unreadable
}

// call calls hook, if set, with kind.
func call(hook func(string), kind string) {
	if hook != nil {
		hook(kind)
	}
}

// Dispatcher delivers the mail outbox: it claims due messages, renders and
// signs them, sends them, and records each outcome. Any number of
// dispatchers, in one process or many, may share one database. It claims
// under a store.Owner: Run's for as long as it runs, or one per RunOnce
// outside Run.
type Dispatcher struct {
	db           *store.DB
	sender       Sender
	composer     *composer
	now          func() time.Time
	batchSize    int
	workers      int
	lease        time.Duration
	sendTimeout  time.Duration
	maxAttempts  int
	backoffBase  time.Duration
	backoffMax   time.Duration
	pollInterval time.Duration
	listenURL    string
	logger       *slog.Logger
	hooks        Hooks
	webhooks     *webhook.Client
	// webhookSchedule is the delay before each retry of a delivery.
	webhookSchedule []time.Duration
	wake            chan struct{}
	wakeEvents      chan struct{}
	holding         atomic.Pointer[holder] // Run's owner, while Run runs
}

// NewDispatcher checks cfg, fills in its defaults and returns a Dispatcher.
func NewDispatcher(cfg Config) (*Dispatcher, error) {
	if cfg.DB == nil {
		return nil, errors.New("mail: dispatcher needs a DB")
	}
	if cfg.Sender == nil {
		return nil, errors.New("mail: dispatcher needs a Sender")
	}
	c, err := newComposer(cfg)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		db:              cfg.DB,
		sender:          cfg.Sender,
		composer:        c,
		now:             cfg.Now,
		batchSize:       orDefault(cfg.BatchSize, 50),
		workers:         orDefault(cfg.Workers, 4),
		lease:           orDefault(cfg.Lease, 2*time.Minute),
		sendTimeout:     orDefault(cfg.SendTimeout, time.Minute),
		maxAttempts:     orDefault(cfg.MaxAttempts, 8),
		backoffBase:     orDefault(cfg.BackoffBase, 10*time.Second),
		backoffMax:      orDefault(cfg.BackoffMax, time.Hour),
		pollInterval:    orDefault(cfg.PollInterval, time.Second),
		listenURL:       cfg.ListenURL,
		logger:          cfg.Logger,
		hooks:           cfg.Hooks,
		webhooks:        cfg.Webhooks,
		webhookSchedule: cfg.WebhookSchedule,
		wake:            make(chan struct{}, 1),
		wakeEvents:      make(chan struct{}, 1),
	}
	if len(d.webhookSchedule) == 0 {
		d.webhookSchedule = DefaultWebhookSchedule
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.logger == nil {
		d.logger = slog.Default()
	}
	if d.lease < d.sendTimeout+leaseMargin {
		return nil, fmt.Errorf("mail: lease %v must exceed the send timeout %v by at least %v", d.lease, d.sendTimeout, leaseMargin)
	}
	if d.backoffMax < d.backoffBase {
		return nil, fmt.Errorf("mail: backoff max %v is below backoff base %v", d.backoffMax, d.backoffBase)
	}
	return d, nil
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
