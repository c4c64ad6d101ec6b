package mail

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/useremail/useremail/store"
)

// Events are the dispatcher's second channel: the deliveries of events
// (store.RecordEvents) to webhook endpoints, claimed with the mail under the
// same owner and lease, reported under the same claims, and retried on
// their own schedule (WebhookSchedule). A claim takes only the first
// delivery in line of each user and endpoint, so a user's events reach an
// endpoint in sequence order.

// DefaultWebhookSchedule is the delay before each retry of a delivery,
// the Standard Webhooks specification's example: after the first attempt
// and the nine retries the delivery is failed.
var DefaultWebhookSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// maxRetryAfter caps how long a Retry-After may put a retry off.
const maxRetryAfter = 24 * time.Hour

// WebhookID returns the webhook-id of an event: the same on every attempt
// and for every endpoint.
func WebhookID(eventID int64) string { return "evt_" + strconv.FormatInt(eventID, 10) }

// EventBody returns the JSON body of an event: {"type", "timestamp" (the
// change's, RFC 3339 in UTC), "data": its data with user_id, sequence and
// actor}. The same event gives the same bytes on every attempt.
func EventBody(e store.Event) ([]byte, error) {
	data := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(e.Data), &data); err != nil {
		return nil, fmt.Errorf("event %d: data: %w", e.ID, err)
	}
	actor, _ := json.Marshal(e.Actor)
	data["user_id"] = json.RawMessage(strconv.FormatInt(e.UserID, 10))
	data["sequence"] = json.RawMessage(strconv.FormatInt(e.Sequence, 10))
	data["actor"] = actor
	return json.Marshal(struct {
		Type      string                     `json:"type"`
		Timestamp string                     `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}{e.Type, e.CreatedAt.UTC().Format(time.RFC3339Nano), data})
}

// deliveryEvent is the event a claimed delivery carries.
func deliveryEvent(dl store.Delivery) store.Event {
	return store.Event{ID: dl.EventID, UserID: dl.UserID, Sequence: dl.Sequence, Type: dl.Type,
		Actor: dl.Actor, Data: dl.Data, CreatedAt: dl.EventCreatedAt}
}

// maxWebhookAttempts is the first attempt and one per retry.
func (d *Dispatcher) maxWebhookAttempts() int { return len(d.webhookSchedule) + 1 }

// handleDelivery makes one attempt of a claimed delivery and records the
// outcome. It reports false for a delivery it handed back unattempted.
func (d *Dispatcher) handleDelivery(ctx context.Context, dl store.Delivery, b *batch) bool {
	log := d.logger.With("delivery_id", dl.ID, "event_id", dl.EventID, "type", dl.Type, "endpoint", dl.Endpoint, "attempt", dl.Attempts)
	if ctx.Err() != nil || d.now().After(b.startBy) || b.unavailable.Load() || b.ownerLost() {
		d.handBackDelivery(ctx, log, b, dl)
		return false
	}
	if dl.Attempts > d.maxWebhookAttempts() {
		d.failDelivery(ctx, log, b, dl, fmt.Sprintf("gave up: claimed %d times without a recorded outcome", dl.Attempts-1))
		return true
	}
	body, err := EventBody(deliveryEvent(dl))
	if err != nil {
		d.failDelivery(ctx, log, b, dl, err.Error())
		return true
	}
	o := d.webhooks.Post(context.WithoutCancel(ctx), dl.Endpoint, WebhookID(dl.EventID), body)
	switch {
	case o.Delivered():
		d.markDelivered(ctx, b, deliveredEvent{dl: dl, log: log})
	case o.Gone():
		d.failDelivery(ctx, log, b, dl, "gave up: the endpoint answered 410 Gone")
	case dl.Attempts >= d.maxWebhookAttempts():
		d.failDelivery(ctx, log, b, dl, fmt.Sprintf("gave up after %d attempts: %v", dl.Attempts, o.Err))
	default:
		next := d.now().Add(d.webhookDelay(dl.Attempts, o.RetryAfter))
		err := d.record(ctx, log, b, "reschedule delivery", func(rctx context.Context) error {
			return d.db.RescheduleDelivery(rctx, dl, next, o.Err.Error())
		})
		if err != nil {
			d.reportError(log, "reschedule delivery", err)
			return true
		}
		log.Warn("webhook: attempt failed, will retry", "next_attempt_at", next, "error", o.Err)
		call(d.hooks.OnDeliveryRetry, dl.Type)
	}
	return true
}

// webhookDelay returns the wait before the retry that follows attempt:
// the schedule's delay, give or take a tenth at random, and no less than
// the endpoint's Retry-After (up to maxRetryAfter).
func (d *Dispatcher) webhookDelay(attempt int, retryAfter time.Duration) time.Duration {
	base := d.webhookSchedule[min(max(attempt, 1), len(d.webhookSchedule))-1]
	spread := int64(base / 10)
	delay := base - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
	return max(delay, min(retryAfter, maxRetryAfter))
}

// failDelivery records that a delivery is given up, for reason.
func (d *Dispatcher) failDelivery(ctx context.Context, log *slog.Logger, b *batch, dl store.Delivery, reason string) {
	err := d.record(ctx, log, b, "fail delivery", func(rctx context.Context) error {
		return d.db.FailDelivery(rctx, dl.Claim(), reason)
	})
	if err != nil {
		d.reportError(log, "fail delivery", err)
		return
	}
	log.Error("webhook: delivery failed for good", "error", reason)
	call(d.hooks.OnDeliveryFailed, dl.Type)
}

// handBackDelivery puts a delivery the batch will not attempt back in line.
func (d *Dispatcher) handBackDelivery(ctx context.Context, log *slog.Logger, b *batch, dl store.Delivery) {
	if b.unavailable.Load() && time.Now().After(b.retryUntil) {
		log.Warn("webhook: left unattempted until its lease ends", "reason", "the database is unavailable")
		return
	}
	err := d.record(ctx, log, b, "hand back delivery", func(rctx context.Context) error {
		return d.db.ReleaseDelivery(rctx, dl.Claim(), d.now())
	})
	if err != nil {
		d.reportError(log, "hand back delivery", err)
		return
	}
	log.Info("webhook: handed back unattempted")
}

// deliveredEvent is a delivery to record.
type deliveredEvent struct {
	dl  store.Delivery
	log *slog.Logger
}

// markDelivered records a delivery of batch b, grouped with the others
// that finish meanwhile (see groupCommit).
func (d *Dispatcher) markDelivered(ctx context.Context, b *batch, de deliveredEvent) {
	b.events.add(de, func(group []deliveredEvent) { d.recordDelivered(ctx, b, group) })
}

// recordDelivered records a group of deliveries with one statement.
func (d *Dispatcher) recordDelivered(ctx context.Context, b *batch, group []deliveredEvent) {
	claims := make([]store.Claim, len(group))
	for i, de := range group {
		claims[i] = de.dl.Claim()
	}
	log := group[0].log
	if len(group) > 1 {
		ids := make([]int64, len(group))
		for i, c := range claims {
			ids[i] = c.ID
		}
		log = d.logger.With("delivery_ids", ids)
	}
	recorded := make(map[int64]bool, len(group))
	now := d.now()
	err := d.record(ctx, log, b, "mark delivered", func(rctx context.Context) error {
		ids, err := d.db.MarkDeliveriesDelivered(rctx, claims, now)
		for _, id := range ids {
			recorded[id] = true
		}
		return err
	})
	for _, de := range group {
		switch {
		case err != nil:
			d.reportError(de.log, "mark delivered", err)
		case !recorded[de.dl.ID]:
			d.reportError(de.log, "mark delivered", store.ErrNotFound)
		default:
			de.log.Info("webhook: delivered")
			call(d.hooks.OnDelivered, de.dl.Type)
		}
	}
}
