// Package ratelimit owns useremail's abuse limits: named rules such as "10
// per minute per user", kept in the database (store.TakeToken) so that they
// hold across every replica that shares it, and the subjects they count,
// such as a client's network (Network). It imports only the store.
package ratelimit

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/useremail/useremail/store"
)

// Rule is a limit of Limit events per Period for each subject. A rule with
// Limit 0 or Period 0 is off.
type Rule struct {
	Name   string
	Limit  int
	Period time.Duration
}

// On reports whether the rule limits anything.
func (r Rule) On() bool { return r.Limit > 0 && r.Period > 0 }

func (r Rule) interval() time.Duration { return r.Period / time.Duration(r.Limit) }

// Exceeded is the error of a denied Take.
type Exceeded struct {
	Rule       string
	RetryAfter time.Duration
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("rate limit %s exceeded; retry after %s", e.Rule, e.RetryAfter)
}

// Limiter checks rules against the store.
type Limiter struct {
	now func() time.Time
}

// New returns a Limiter. now is the clock; nil means time.Now.
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now}
}

// Take spends one event of rule for subject, on q (a transaction's Queries,
// so that a rolled-back change gives its event back, or the DB's). It
// returns *Exceeded when the limit is reached; nothing is spent then.
// subject should be a user id or a normalized address key, so that case
// and Unicode variants of one address share one limit.
func (l *Limiter) Take(ctx context.Context, q *store.Queries, rule Rule, subject string) error {
	if !rule.On() {
		return nil
	}
	ok, wait, err := q.TakeToken(ctx, key(rule, subject), l.now(), rule.interval(), rule.Period)
	if err != nil {
		return err
	}
	if !ok {
		return &Exceeded{Rule: rule.Name, RetryAfter: wait}
	}
	return nil
}

// Refund gives back one event of rule for subject: for rules that count
// only failures, a success refunds the event its attempt took.
func (l *Limiter) Refund(ctx context.Context, q *store.Queries, rule Rule, subject string) error {
	if !rule.On() {
		return nil
	}
	return q.ReturnToken(ctx, key(rule, subject), rule.interval())
}

func key(rule Rule, subject string) string { return rule.Name + ":" + subject }

// Network returns the client network of ip, the subject of the per-network
// limits: an IPv4 address as its /32, an IPv6 address as its /64. Why /64:
// it is one LAN, within which a host picks new addresses at will (privacy
// extensions), so a single address would not count one client. An ip that
// does not parse is returned as it is.
func Network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32).String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
