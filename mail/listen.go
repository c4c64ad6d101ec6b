package mail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/useremail/useremail/store"
)

// listenTimeout bounds how long ListenPostgres waits for its first
// connection.
const listenTimeout = 10 * time.Second

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
	// to a server that went silent, and the listener then reconnects.
	l := pq.NewDialListener(store.PostgresDialer(), dsn, time.Second, time.Minute, nil)
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
		ping := time.NewTicker(90 * time.Second)
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
				_ = l.Ping()
			}
		}
	}()
	return out, nil
}
