package password

import (
	"context"
	"sync"
	"time"
)

// An equalizer makes a verification take as long as one against the
// slowest kind of stored hash it has seen. Why: login answers an unknown
// address after a dummy verification with the Hasher's own parameters,
// and a known one after verifying the stored hash, whose parameters are
// those it was written with. When they differ, so do the times: a hash
// written with one lane (p=1, this package's default before) takes far
// more wall time than a two-lane one on two cores, so without this an
// attacker could tell the accounts that exist, and have not logged in since
// the default changed, from the addresses that do not.
//
// Each kind of hash (its memory, passes and lanes) has a moving average of
// its derivation's wall time. A verification of a kind that is not the
// slowest seen waits, after giving back its slot, until it has taken its
// own time scaled by the ratio of the slowest kind's average to its own:
// scaling, not a fixed floor, so that it follows the machine's load, which
// slows every kind alike. Waiting holds no slot and no CPU, so it costs
// latency only, and only while stored hashes of more than one kind are in
// use. With a single kind in use (every hash rehashed, or a new install)
// nothing waits.
//
// What it cannot hide: a kind is learnt at its first verification after the
// process starts, so that first one is not equalised.
type equalizer struct {
	mu    sync.Mutex
	kinds map[cost]time.Duration // moving average of the derivation's wall time
}

// cost is what decides a derivation's time: the scheme and its work
// parameters (for argon2id memory, passes and lanes; salt and key lengths
// hardly matter). Other schemes put theirs in the same fields.
type cost struct {
	memory, iterations uint32
	parallelism        uint8
	scheme             string // empty for this package's own argon2id
}

func costOf(p Params) cost { return cost{p.Memory, p.Iterations, p.Parallelism, ""} }

const (
	// maxKinds bounds the table, though stored hashes come from the few
	// parameter sets a deployment has configured over time; a kind beyond
	// it is padded like the others but not learnt.
	maxKinds = 16
	// emaShift weighs each new sample by 1/2^emaShift.
	emaShift = 3
)

// observe records that a derivation of kind c took took and returns how
// much longer the verification should take.
func (e *equalizer) observe(c cost, took time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	avg, seen := e.kinds[c]
	switch {
	case seen:
		avg += (took - avg) >> emaShift
		e.kinds[c] = avg
	case len(e.kinds) < maxKinds:
		if e.kinds == nil {
			e.kinds = make(map[cost]time.Duration, 2)
		}
		avg = took
		e.kinds[c] = avg
	default:
		avg = took
	}
	var slowest time.Duration
	for _, a := range e.kinds {
		slowest = max(slowest, a)
	}
	if avg <= 0 || slowest <= avg {
		return 0
	}
	// took × slowest/avg, in floating point: the product of two durations
	// overflows int64 at a few seconds each.
	return time.Duration(float64(took)*float64(slowest)/float64(avg)) - took
}

// wait waits for d, or until ctx ends: a caller that has gone observes no
// timing.
func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
