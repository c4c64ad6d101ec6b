package server

import (
	"context"
	"encoding/json"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/store"
)

// The event types of the contract (API.md, "Events (webhooks)").
const (
	EventUserCreated         = "user.created"
	EventUserDeleted         = "user.deleted"
	EventUserPasswordChanged = "user.password_changed"
	EventEmailAdded          = "email.added"
	EventEmailVerified       = "email.verified"
	EventEmailRemoved        = "email.removed"
	EventEmailPrimaryChanged = "email.primary_changed"
)

// The actors of events: a request under the user's session (or sign-up),
// a link's click, or an admin token (AdminActor).
const (
	ActorUser = "user"
	ActorLink = "link"
)

// AdminActor is the actor of an admin API write made with the named token.
func AdminActor(tokenName string) string { return "admin:" + tokenName }

// eventData is an event's data beyond user_id, sequence and actor, which
// the dispatcher adds from the event's columns.
type eventData struct {
	Email    *gen.Email `json:"email,omitempty"`
	Previous *gen.Email `json:"previous,omitempty"`
}

// newEvent returns an event of typ by actor about email (nil: none) and,
// for a primary change, the previous primary.
func newEvent(typ, actor string, email, previous *store.Email) store.NewEvent {
	var d eventData
	if email != nil {
		e := toAPIEmail(*email)
		d.Email = &e
	}
	if previous != nil {
		p := toAPIEmail(*previous)
		d.Previous = &p
	}
	// Marshalling two structs of strings, integers and booleans cannot fail.
	b, _ := json.Marshal(d)
	return store.NewEvent{Type: typ, Actor: actor, Data: string(b)}
}

// The events of each kind of change, as their constructors: e is the
// address as the change left it.
func userCreated(actor string, primary store.Email) store.NewEvent {
	return newEvent(EventUserCreated, actor, &primary, nil)
}
func userDeleted(actor string) store.NewEvent { return newEvent(EventUserDeleted, actor, nil, nil) }
func passwordChanged(actor string) store.NewEvent {
	return newEvent(EventUserPasswordChanged, actor, nil, nil)
}
func emailAdded(actor string, e store.Email) store.NewEvent {
	return newEvent(EventEmailAdded, actor, &e, nil)
}
func emailVerified(actor string, e store.Email) store.NewEvent {
	return newEvent(EventEmailVerified, actor, &e, nil)
}
func emailRemoved(actor string, e store.Email) store.NewEvent {
	return newEvent(EventEmailRemoved, actor, &e, nil)
}
func primaryChanged(actor string, e, previous store.Email) store.NewEvent {
	return newEvent(EventEmailPrimaryChanged, actor, &e, &previous)
}

// emit records the events of one change of userID, in the order given,
// inside the change's transaction q (after the user's row is locked), with
// a delivery to every webhook endpoint; the dispatcher delivers them after
// the commit. Every change the contract lists as an event calls it.
func (s *Server) emit(ctx context.Context, q *store.Queries, userID int64, events ...store.NewEvent) error {
	if s.cfg.EventsOff {
		return nil
	}
	return q.RecordEvents(ctx, userID, events, s.cfg.WebhookEndpoints, s.now())
}
