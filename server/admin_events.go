package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
)

// eventRedelivered is the audit event of an admin's redelivery.
const eventRedelivered = "event_redelivered"

var errNoSuchEvent = problem(http.StatusNotFound, gen.ErrorCodeNotFound, "No such event.")

// AdminListEvents answers a page of the events with their deliveries.
func (s *Server) AdminListEvents(ctx context.Context, req gen.AdminListEventsRequestObject) (gen.AdminListEventsResponseObject, error) {
	p := pageOf(req.Params.After, req.Params.Limit)
	f := store.EventFilter{After: p.After, Limit: p.Limit + 1} // one more tells whether a page follows
	if req.Params.UserId != nil {
		f.UserID = *req.Params.UserId
	}
	if req.Params.Type != nil {
		f.Type = string(*req.Params.Type)
	}
	evs, err := s.cfg.DB.ListEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	var next int64
	if len(evs) > p.Limit {
		evs = evs[:p.Limit]
		next = evs[len(evs)-1].ID
	}
	out := gen.AdminListEvents200JSONResponse{Items: make([]gen.Event, len(evs)), NextAfter: nextAfter(next)}
	for i, e := range evs {
		if out.Items[i], err = toAPIEvent(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// toAPIEvent converts a stored event; a delivery being sent is pending.
func toAPIEvent(e store.EventWithDeliveries) (gen.Event, error) {
	out := gen.Event{
		Id: e.ID, Type: gen.EventType(e.Type), UserId: e.UserID, Sequence: e.Sequence, Actor: e.Actor,
		CreatedAt: e.CreatedAt.UTC(), Data: map[string]any{}, Deliveries: make([]gen.EventDelivery, len(e.Deliveries)),
	}
	if err := json.Unmarshal([]byte(e.Data), &out.Data); err != nil {
		return out, fmt.Errorf("event %d: data: %w", e.ID, err)
	}
	for i, d := range e.Deliveries {
		status := d.Status
		if status == store.DeliverySending {
			status = store.DeliveryPending
		}
		out.Deliveries[i] = gen.EventDelivery{Endpoint: d.Endpoint, Status: gen.DeliveryStatus(status),
			Attempts: d.Attempts, LastError: d.LastError, DeliveredAt: d.DeliveredAt}
		if d.DeliveredAt != nil {
			at := d.DeliveredAt.UTC()
			out.Deliveries[i].DeliveredAt = &at
		}
	}
	return out, nil
}

// AdminRedeliverEvent queues an event again for every webhook endpoint,
// with the same webhook-id.
func (s *Server) AdminRedeliverEvent(ctx context.Context, req gen.AdminRedeliverEventRequestObject) (gen.AdminRedeliverEventResponseObject, error) {
	err := s.withTx(ctx, func(q *store.Queries) error {
		e, err := q.Redeliver(ctx, req.Id, s.cfg.WebhookEndpoints, s.now())
		if errors.Is(err, store.ErrNotFound) {
			return errNoSuchEvent
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, q, e.UserID, eventRedelivered, "")
	})
	if err != nil {
		return nil, err
	}
	return gen.AdminRedeliverEvent202Response{}, nil
}
