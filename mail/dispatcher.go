package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	netmail "net/mail"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
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
	// VerifyTTL and ChangeTTL are the max ages of verify and set-primary
	// links (defaults 72h and 24h). They only word the mails ("This link
	// expires in 3 days."): the handlers that check links must use the
	// same values.
	VerifyTTL, ChangeTTL time.Duration

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BatchSize is how many messages one claim takes; default 50.
	BatchSize int
	// Workers is how many mails of a batch are sent at once; default 4.
	Workers int
	// Lease is how long a claim lasts before another dispatcher may take the
	// message over; default 2m. It must exceed SendTimeout by at least 10 s.
	// A report of an outcome that the database does not take is tried
	// again until 2 s before the lease ends.
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
}

// leaseMargin is the part of a lease kept free after the longest send, for
// the report of its outcome and for clock skew between dispatchers.
const leaseMargin = 10 * time.Second

// reportTimeout bounds one try of the store write that records an outcome.
const reportTimeout = 10 * time.Second

// A report the database cannot take (it is down, restarting, or too slow)
// is tried again after a delay that grows from reportRetryMin to
// reportRetryMax, until reportRetryStop before the claim's lease ends: a
// delivery that is never recorded is repeated by the claim that follows the
// lease, so a short outage must not lose the record.
const (
	reportRetryMin  = 100 * time.Millisecond
	reportRetryMax  = 2 * time.Second
	reportRetryStop = 2 * time.Second
)

// wakeDelay is how long Run waits after a Wake or a notification before it
// claims, gathering the mail that other requests queue meanwhile into the
// same batch. Under load it turns a claim, a record and a look for the next
// due time per request into one per batch; alone, a mail goes out that
// much later.
const wakeDelay = 10 * time.Millisecond

// claimBackoffMax caps the wait between claims while they fail (the
// database is down): the wait doubles from PollInterval up to it.
const claimBackoffMax = 30 * time.Second

// Dispatcher delivers the mail outbox: it claims due messages, renders and
// signs them, sends them, and records each outcome. Any number of
// dispatchers, in one process or many, may share one database.
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
	wake         chan struct{}
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
		db:           cfg.DB,
		sender:       cfg.Sender,
		composer:     c,
		now:          cfg.Now,
		batchSize:    orDefault(cfg.BatchSize, 50),
		workers:      orDefault(cfg.Workers, 4),
		lease:        orDefault(cfg.Lease, 2*time.Minute),
		sendTimeout:  orDefault(cfg.SendTimeout, time.Minute),
		maxAttempts:  orDefault(cfg.MaxAttempts, 8),
		backoffBase:  orDefault(cfg.BackoffBase, 10*time.Second),
		backoffMax:   orDefault(cfg.BackoffMax, time.Hour),
		pollInterval: orDefault(cfg.PollInterval, time.Second),
		listenURL:    cfg.ListenURL,
		logger:       cfg.Logger,
		hooks:        cfg.Hooks,
		wake:         make(chan struct{}, 1),
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

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// newComposer checks and defaults the rendering part of cfg.
func newComposer(cfg Config) (*composer, error) {
	if cfg.Signer == nil {
		return nil, errors.New("mail: dispatcher needs a Signer")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mail: public URL %q: want http(s)://host[:port][/path]", cfg.PublicURL)
	}
	product := cfg.ProductName
	if product == "" {
		product = "useremail"
	}
	if strings.IndexFunc(product, unicode.IsControl) >= 0 || !utf8.ValidString(product) {
		return nil, fmt.Errorf("mail: product name %q has control characters", product)
	}
	from := cfg.From
	if from == "" {
		from = "useremail@localhost"
	}
	fromAddr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail: From %q: %w", from, err)
	}
	if fromAddr.Name == "" {
		fromAddr.Name = product
	}
	ascii := envelopeAddress(fromAddr.Address)
	return &composer{
		signer:     cfg.Signer,
		publicURL:  strings.TrimSuffix(cfg.PublicURL, "/"),
		from:       fromAddr.String(),
		fromDomain: strings.ToLower(ascii[strings.LastIndexByte(ascii, '@')+1:]),
		product:    product,
		verifyTTL:  orDefault(cfg.VerifyTTL, 72*time.Hour),
		changeTTL:  orDefault(cfg.ChangeTTL, 24*time.Hour),
	}, nil
}

// Wake makes a sleeping Run look for due messages at once. It never blocks;
// call it after committing a transaction that queued a mail.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sends due messages until ctx is done. After a full batch it claims
// the next at once; otherwise it sleeps up to PollInterval (less when a
// message falls due sooner), and wakes on Wake and, with ListenURL, on a
// PostgreSQL notification (claiming wakeDelay later, to gather what else is
// being queued); if it cannot LISTEN it logs why and polls. While claims fail (the database is down) it
// backs off: the sleep doubles from PollInterval up to 30 s, and only the
// first failure is logged as an error, the repeats as warnings with their
// count; the first claim that works resets it. When ctx is done, the sends
// in flight are finished and recorded, the rest of the batch is handed
// back, and Run returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	var notify <-chan struct{}
	if d.listenURL != "" {
		// Listen before the first batch: a mail queued before LISTEN took
		// effect is then found by that batch, one queued after is notified.
		ch, err := ListenPostgres(ctx, d.listenURL)
		if err != nil {
			d.logger.Warn("mail: cannot LISTEN for new mail; polling only", "error", err)
		} else {
			notify = ch
		}
	}
	var failures int
	var failingSince time.Time
	for {
		n, err := d.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && failures > 0 {
			d.logger.Info("mail: dispatch works again", "failures", failures,
				"after", time.Since(failingSince).Round(time.Millisecond).String())
			failures = 0
		}
		wait := d.pollInterval
		switch {
		case err != nil:
			failures++
			wait = d.claimBackoff(failures)
			if failures == 1 {
				failingSince = time.Now()
				d.logger.Error("mail: dispatch failed", "error", err, "retry_in", wait.Round(time.Millisecond).String())
			} else {
				d.logger.Warn("mail: dispatch still failing", "failures", failures,
					"for", time.Since(failingSince).Round(time.Millisecond).String(),
					"error", err, "retry_in", wait.Round(time.Millisecond).String())
			}
		case n >= d.batchSize:
			continue // more may be due already
		default:
			// A batch that was not full took all that was due at its claim.
			// What fell due since is mostly new mail, which wakes Run (Wake,
			// a notification); the rest (retries, messages handed back,
			// another dispatcher's lost leases, mail of a replica that
			// cannot notify) the next due time says, at no cost of a claim
			// that would find nothing.
			if due, err := d.db.NextDueAt(ctx); err == nil {
				wait = min(wait, max(due.Sub(d.now()), 50*time.Millisecond))
			}
		}
		timer := time.NewTimer(wait)
		woken := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.wake:
			woken = true
		case _, ok := <-notify:
			if !ok {
				notify = nil
			}
			woken = true
		case <-timer.C:
		}
		timer.Stop()
		if woken {
			// New mail: let the mail of the requests committing at about
			// the same time join it, so that one claim and one record take
			// them all, instead of a claim per request (and another for the
			// same request's notification).
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wakeDelay):
			}
			select {
			case <-d.wake:
			default:
			}
			select {
			case _, ok := <-notify:
				if !ok {
					notify = nil
				}
			default:
			}
		}
	}
}

// claimBackoff returns the sleep after the given number of claims that
// failed in a row: PollInterval doubled for each failure after the first,
// up to claimBackoffMax (or PollInterval, if that is longer), less a random
// part of up to a fifth so that replicas that failed together do not come
// back together.
func (d *Dispatcher) claimBackoff(failures int) time.Duration {
	ceiling := max(claimBackoffMax, d.pollInterval)
	wait := d.pollInterval
	for i := 1; i < failures && wait < ceiling; i++ {
		wait *= 2
	}
	wait = min(wait, ceiling)
	return wait - time.Duration(rand.Int64N(int64(wait/5)+1))
}

// RunOnce claims one batch of due messages and handles each: it renders and
// signs it, sends it (Workers at a time), and records the outcome: sent;
// rescheduled after a temporary error while attempts remain; failed after a
// permanent error, the last attempt, or for a row that cannot be rendered. It
// returns how many messages it handled. Errors of one message never stop the
// batch; the error returned is the claim's.
//
// A report that the database does not take (it is down or restarting) is
// tried again until shortly before the lease ends, so that a short outage
// neither loses the record of a delivery nor causes a second one; while a
// report waits, the messages of the batch not yet started are handed back
// unsent.
//
// When ctx is done no new send starts: the messages not yet started are
// handed back to the queue, and the sends in flight are finished (each with
// its own SendTimeout) and recorded.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// The claim is not cut short by ctx: a cancellation racing with the
	// commit could report failure for a claim that committed, and leave its
	// messages leased to nobody until the lease ran out. Once claimed, a
	// message is handed back at once if ctx is done.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	claimedAt, claimedReal := d.now(), time.Now()
	var msgs []store.Message
	err := d.db.WithTx(cctx, func(q *store.Queries) error {
		var err error
		msgs, err = q.ClaimMessages(cctx, claimedAt, d.lease, d.batchSize)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mail: claim: %w", err)
	}
	b := &batch{
		// The whole batch is leased at once but sent a few at a time, so a
		// slow server can make the last ones start late. A send may start
		// only while enough of the lease remains for it to finish and be
		// recorded before another dispatcher may take the message over;
		// later ones are handed back. Without this a mail could go out twice.
		startBy: claimedAt.Add(d.lease - d.sendTimeout - leaseMargin),
		// The lease is on the dispatcher's clock (which tests may set);
		// the waits between tries of a report are on the real one.
		retryUntil: claimedReal.Add(d.lease - reportRetryStop),
	}
	var next, handled atomic.Int64
	var wg sync.WaitGroup
	for range min(d.workers, len(msgs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) {
					return
				}
				if d.handle(ctx, msgs[i], b) {
					handled.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(handled.Load()), nil
}

// batch is what the messages of one claim share.
type batch struct {
	// startBy is the last moment, on the dispatcher's clock, a send of the
	// batch may start.
	startBy time.Time
	// retryUntil is when, in real time, the tries of a report stop: shortly
	// before the lease ends.
	retryUntil time.Time
	// unavailable is set while the database refuses the batch's reports
	// (from a report that failed so to the next one that lands). The
	// messages not yet started are then handed back rather than sent: a
	// delivery that cannot be recorded would be repeated after the lease.
	unavailable atomic.Bool

	mu        sync.Mutex
	sent      []sentMessage // deliveries waiting to be recorded (markSent)
	recording bool          // a worker is recording deliveries
}

// handle sends one claimed message and records the outcome. It reports false
// for a message it handed back unsent.
func (d *Dispatcher) handle(ctx context.Context, m store.Message, b *batch) bool {
	log := d.logger.With("outbox_id", m.ID, "kind", m.Kind, "attempt", m.Attempts)

	if ctx.Err() != nil || d.now().After(b.startBy) || b.unavailable.Load() {
		reason := releaseReason(ctx)
		if b.unavailable.Load() {
			reason = "the database is unavailable"
			if time.Now().After(b.retryUntil) {
				// Each try would wait for a database that did not answer
				// the batch's last reports; the lease, about to end, hands
				// the message back by itself.
				log.Warn("mail: left unsent until its lease ends", "reason", reason)
				return false
			}
		}
		err := d.record(ctx, log, b, "hand back", func(rctx context.Context) error {
			return d.db.ReleaseMessage(rctx, m.ID, m.Attempts, d.now())
		})
		if err != nil {
			d.reportError(log, "hand back", err)
		} else {
			log.Info("mail: handed back unsent", "reason", reason)
		}
		return false
	}
	if m.Attempts > d.maxAttempts {
		// Earlier claims of this row all ran out of lease without a report
		// (a dispatcher crashed or hung on it): stop rather than loop.
		d.fail(ctx, log, b, m, fmt.Sprintf("gave up: claimed %d times without a recorded outcome", m.Attempts-1))
		return true
	}
	msg, err := d.composer.compose(m, d.now())
	if err != nil {
		d.fail(ctx, log, b, m, err.Error())
		return true
	}
	log = log.With("message_id", msg.MessageID)

	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), d.sendTimeout)
	err = d.sender.Send(sctx, msg)
	scancel()
	switch {
	case err == nil:
		d.markSent(ctx, b, sentMessage{m: m, log: log})
	case Permanent(err):
		d.fail(ctx, log, b, m, err.Error())
	case m.Attempts >= d.maxAttempts:
		d.fail(ctx, log, b, m, fmt.Sprintf("gave up after %d attempts: %v", m.Attempts, err))
	default:
		next := d.now().Add(d.backoff(m.Attempts))
		rerr := d.record(ctx, log, b, "reschedule", func(rctx context.Context) error {
			return d.db.RescheduleMessage(rctx, m.ID, m.Attempts, next, err.Error())
		})
		if rerr != nil {
			d.reportError(log, "reschedule", rerr)
			return true
		}
		log.Warn("mail: temporary failure, will retry", "next_attempt_at", next, "error", err)
		call(d.hooks.OnRetry, m.Kind)
	}
	return true
}

func (d *Dispatcher) fail(ctx context.Context, log *slog.Logger, b *batch, m store.Message, reason string) {
	err := d.record(ctx, log, b, "mark failed", func(rctx context.Context) error {
		return d.db.FailMessage(rctx, m.ID, m.Attempts, reason)
	})
	if err != nil {
		d.reportError(log, "mark failed", err)
		return
	}
	log.Error("mail: failed for good", "error", reason)
	call(d.hooks.OnFailed, m.Kind)
}

// sentMessage is a delivery to record.
type sentMessage struct {
	m   store.Message
	log *slog.Logger
}

// markSent records a delivery of batch b. Deliveries are recorded together,
// as in a group commit: the worker that finds no record in progress writes
// the waiting deliveries with one UPDATE (MarkMessagesSent), and again for
// those that finished meanwhile, until none waits; the others leave theirs
// to it. A delivery waits for at most the record in progress, never for the
// rest of the batch: a crash loses no more records than one at a time did.
func (d *Dispatcher) markSent(ctx context.Context, b *batch, s sentMessage) {
	b.mu.Lock()
	b.sent = append(b.sent, s)
	if b.recording {
		b.mu.Unlock()
		return
	}
	b.recording = true
	for len(b.sent) > 0 {
		group := b.sent
		b.sent = nil
		b.mu.Unlock()
		d.recordSent(ctx, b, group)
		b.mu.Lock()
	}
	b.recording = false
	b.mu.Unlock()
}

// recordSent records a group of deliveries with one UPDATE, each row
// guarded by its own claim, and reports each outcome as MarkMessageSent's
// would be: sent, or not recorded because the lease was taken over.
func (d *Dispatcher) recordSent(ctx context.Context, b *batch, group []sentMessage) {
	claims := make([]store.Claim, len(group))
	for i, s := range group {
		claims[i] = store.Claim{ID: s.m.ID, Attempt: s.m.Attempts}
	}
	log := group[0].log
	if len(group) > 1 {
		ids := make([]int64, len(group))
		for i, c := range claims {
			ids[i] = c.ID
		}
		log = d.logger.With("outbox_ids", ids)
	}
	recorded := make(map[int64]bool, len(group))
	now := d.now() // the same report on every try
	err := d.record(ctx, log, b, "mark sent", func(rctx context.Context) error {
		ids, err := d.db.MarkMessagesSent(rctx, claims, now)
		for _, id := range ids {
			recorded[id] = true
		}
		return err
	})
	for _, s := range group {
		switch {
		case err != nil:
			d.reportError(s.log, "mark sent", err)
		case !recorded[s.m.ID]:
			d.reportError(s.log, "mark sent", store.ErrNotFound)
		default:
			s.log.Info("mail: sent")
			call(d.hooks.OnSent, s.m.Kind)
		}
	}
}

// record writes one report of claimed messages with write, each try
// bounded by reportTimeout. The reports are written even when ctx is done:
// a mail that left must be recorded as sent, or it would be sent again
// after the lease.
//
// While the database is unavailable it tries again, after a delay that
// grows from reportRetryMin to reportRetryMax, until shortly before the
// lease ends: until then no other claim can take the message, so a report
// that lands in time prevents a duplicate. A try whose answer was lost may
// have committed; the store recognises the repeat of a report that landed.
// Other errors, ErrNotFound among them (the lease was taken over), are
// returned at once.
func (d *Dispatcher) record(ctx context.Context, log *slog.Logger, b *batch, what string, write func(context.Context) error) error {
	parent := context.WithoutCancel(ctx)
	wait := reportRetryMin
	var firstFailure time.Time
	for tries := 1; ; tries++ {
		rctx, cancel := context.WithTimeout(parent, reportTimeout)
		err := write(rctx)
		cancel()
		if err == nil {
			b.unavailable.Store(false)
			if tries > 1 {
				log.Info("mail: outcome recorded after the database came back", "report", what, "tries", tries,
					"after", time.Since(firstFailure).Round(time.Millisecond).String())
			}
			return nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		b.unavailable.Store(true)
		if tries == 1 {
			firstFailure = time.Now()
		}
		sleep := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		if time.Now().Add(sleep).After(b.retryUntil) {
			if tries == 1 {
				return err
			}
			return fmt.Errorf("gave up after %d tries over %v, as the lease is about to end: %w",
				tries, time.Since(firstFailure).Round(time.Millisecond), err)
		}
		if tries == 1 {
			log.Warn("mail: cannot record outcome yet; retrying until shortly before the lease ends",
				"report", what, "error", err, "retry_until", b.retryUntil)
		}
		time.Sleep(sleep)
		wait = min(wait*2, reportRetryMax)
	}
}

// reportError logs a report that could not be recorded. ErrNotFound means
// the lease ran out and another dispatcher took the message over: its
// outcome is the one that counts.
func (d *Dispatcher) reportError(log *slog.Logger, what string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("mail: lease was taken over; outcome not recorded", "report", what)
		return
	}
	log.Error("mail: cannot record outcome", "report", what, "error", err)
}

func releaseReason(ctx context.Context) string {
	if ctx.Err() != nil {
		return "shutting down"
	}
	return "too little of the lease left"
}

// backoff returns the delay before the retry that follows attempt: full
// jitter over an exponential ceiling, so that many mails failing together do
// not come back together.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	ceiling := d.backoffBase
	for i := 1; i < attempt && ceiling < d.backoffMax; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, d.backoffMax)
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

func call(hook func(string), kind string) {
	if hook != nil {
		hook(kind)
	}
}
