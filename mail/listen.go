package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lib/pq"

	"github.com/useremail/useremail/store"
)

// listenTimeout bounds how long ListenPostgres waits for its first
// connection.
const listenTimeout = 10 * time.Second

// The listening connection is pinged every listenPingEvery; a ping that
// gets no answer within listenPingTimeout (a path that went silent) closes
// it, and the listener connects again.
const (
	listenPingEvery   = 90 * time.Second
	listenPingTimeout = 5 * time.Second
)

// announceTimeout bounds one notification of an Announcer.
const announceTimeout = 5 * time.Second

// ListenPostgres listens on store.NotifyChannel of the PostgreSQL database
// at databaseURL and returns a channel that receives a value soon after each
// commit that queued mail. Values are coalesced: one value may stand for
// many notifications. It also receives one after the listening connection
// was lost and re-established (notifications may have been missed
// meanwhile). It returns an error if it cannot listen within 10 s. It
// listens, and reconnects when the connection drops, until ctx is done; then
// it closes the channel.
func ListenPostgres(ctx context.Context, databaseURL string) (<-chan struct{}, error) {
	dialect, dsn, err := store.ParseURL(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("mail: listen: %w", err)
	}
	if dialect != store.Postgres {
		return nil, errors.New("mail: listen: LISTEN/NOTIFY needs a postgres:// database URL")
	}
	// The store's dialer: keepalive and TCP_USER_TIMEOUT end a connection
	// to a server that went silent, and the listener then reconnects; a
	// ping without an answer hangs it up (pingOrHangUp).
	dialer := store.NewListenDialer()
	l := pq.NewDialListener(dialer, dsn, time.Second, time.Minute, nil)
	listened := make(chan error, 1)
	go func() { listened <- l.Listen(store.NotifyChannel) }()
	timer := time.NewTimer(listenTimeout)
	defer timer.Stop()
	select {
	case err := <-listened:
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("mail: listen: %w", err)
		}
	case <-timer.C:
		// Listen keeps retrying the connection until Close.
		_ = l.Close()
		return nil, fmt.Errorf("mail: listen: no connection to PostgreSQL within %v", listenTimeout)
	case <-ctx.Done():
		_ = l.Close()
		return nil, ctx.Err()
	}

	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer l.Close()
		// A connection can die without the listener noticing (a NAT or a
		// firewall dropping it silently); a periodic ping finds out, and the
		// listener then reconnects.
		ping := time.NewTicker(listenPingEvery)
		defer ping.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-l.Notify:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			case <-ping.C:
				pingOrHangUp(l, dialer)
			}
		}
	}()
	return out, nil
}

// pingOrHangUp pings the listener's server and, when no answer comes within
// listenPingTimeout, closes the listener's connection: the ping then
// returns, and the listener connects again.
func pingOrHangUp(l *pq.Listener, dialer *store.ListenDialer) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Ping()
	}()
	timer := time.NewTimer(listenPingTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		dialer.HangUp()
		<-done
	}
}

// announceGather is the least time between two notifications an Announcer
// sends: mail queued meanwhile is announced by the next one.
const announceGather = 10 * time.Millisecond

// Announcer tells the dispatchers listening on PostgreSQL (ListenPostgres)
// that mail was queued, with one notification outside the transactions that
// queued it (store.NotifyMailQueued says why) for all the mail queued within
// announceGather. Announce after each commit that queued mail; Run sends
// the notifications. The process's own dispatcher should be woken directly
// (Dispatcher.Wake): the notification reaches it too, but later. A
// notification that is lost (the process stops, the database is down) only
// delays the mail until a dispatcher's next poll. The zero value is not
// usable; make one with NewAnnouncer.
type Announcer struct {
	db      *store.DB
	logger  *slog.Logger
	pending chan struct{}
}

// NewAnnouncer returns an Announcer that notifies through db.
func NewAnnouncer(db *store.DB, logger *slog.Logger) *Announcer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Announcer{db: db, logger: logger, pending: make(chan struct{}, 1)}
}

// Announce asks Run for a notification. It never blocks: announcements
// made while one waits are folded into it.
func (a *Announcer) Announce() {
	select {
	case a.pending <- struct{}{}:
	default:
	}
}

// Run sends a notification for each batch of announcements until ctx is
// done, at most one per announceGather.
func (a *Announcer) Run(ctx context.Context) {
	gather := time.NewTimer(0)
	defer gather.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.pending:
		}
		nctx, cancel := context.WithTimeout(ctx, announceTimeout)
		err := a.db.NotifyMailQueued(nctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			// Dispatchers poll as well; the mail is only later.
			a.logger.Warn("mail: could not announce queued mail to other dispatchers", "error", err)
		}
		gather.Reset(announceGather)
		select {
		case <-ctx.Done():
			return
		case <-gather.C:
		}
	}
}
