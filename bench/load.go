package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// scenario is one kind of request, driven in a closed loop.
type scenario struct {
	name string
	want int // the status of success
	// build makes the n-th request of a run.
	build func(base string, n uint64) (*http.Request, error)
	// ok, when set, sees the body of each successful answer.
	ok func(body []byte)
}

// result is one measured run.
type result struct {
	requests int // answered as the scenario wants; rps counts these alone
	errors   int // answers other than the scenario's status, and transport failures
	elapsed  time.Duration
	p50, p99 time.Duration
	rssKiB   int64
	firstErr string
	cpu      time.Duration // of the server process over the run
	dbCPU    time.Duration // of the PostgreSQL backends of the run's database
	drain    time.Duration // until the service's dispatcher had delivered the run's mail
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// drive runs sc against base with conc clients in a closed loop for d.
func drive(ctx context.Context, base string, sc *scenario, conc int, d time.Duration) result {
	tr := &http.Transport{
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		MaxConnsPerHost:     conc,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		counter  atomic.Uint64
		mu       sync.Mutex
		all      []time.Duration
		errs     int
		firstErr string
		wg       sync.WaitGroup
	)
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			bad := 0
			var badText string
			for runCtx.Err() == nil {
				req, err := sc.build(base, counter.Add(1)-1)
				if err != nil {
					bad++
					badText = err.Error()
					continue
				}
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					if runCtx.Err() == nil {
						bad++
						badText = err.Error()
					}
					continue
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				elapsed := time.Since(t0)
				switch {
				case err != nil:
					bad++
					badText = err.Error()
				case res.StatusCode != sc.want:
					bad++
					badText = fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
				default:
					lat = append(lat, elapsed)
					if sc.ok != nil {
						sc.ok(body)
					}
				}
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			if firstErr == "" {
				firstErr = badText
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	r := result{requests: len(all), errors: errs, elapsed: time.Since(start), firstErr: firstErr}
	slices.Sort(all)
	r.p50, r.p99 = percentile(all, 0.50), percentile(all, 0.99)
	return r
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// workload holds what the scenarios draw on: the seeded sessions and users,
// and the pool of unverified addresses for verify links.
type workload struct {
	seed   *seeded
	signer *signer.Signer
	nonce  string // keeps added addresses of different runs apart

	addSeq atomic.Int64 // numbers the added addresses

	addedBy sync.Map // address being added -> user id

	mu      sync.Mutex
	pending []pendingEmail // unverified addresses, oldest first
	links   []string       // signed verify URLs (paths), made before a verify run
	next    atomic.Int64   // next link to use
	repeats atomic.Int64   // links used a second time (pool exhausted)
}

func (w *workload) cookie(s benchSession) string {
	return "sessionid=" + s.id + "; osessionid=" + s.id + "; csrftoken=" + s.csrf
}

func (w *workload) session(n uint64) benchSession {
	return w.seed.sessions[n%uint64(len(w.seed.sessions))]
}

// scenarios returns the scenarios in the order they run: the reads first,
// while every user still has its seeded addresses only; login last, so that
// the memory its password hashes leave behind does not count as the peak
// RSS of the others.
func (w *workload) scenarios() []*scenario {
	get := func(name, suffix string) *scenario {
		return &scenario{name: name, want: http.StatusOK, build: func(base string, n uint64) (*http.Request, error) {
			s := w.session(n)
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/users/%d/%s", base, s.userID, suffix), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Cookie", w.cookie(s))
			req.Header.Set("Accept", "application/json")
			return req, nil
		}}
	}
	list := get("list emails", "emails/")
	primary := get("primary email", "primary-email/")

	login := &scenario{name: "login", want: http.StatusOK, build: func(base string, n uint64) (*http.Request, error) {
		id := w.seed.minID + int64(n*7919%uint64(w.seed.users))
		body, _ := json.Marshal(map[string]string{"email": primaryAddress(id), "password": benchPassword})
		return jsonRequest(base+"/auth/login/", body)
	}}

	add := &scenario{name: "add email", want: http.StatusCreated, build: func(base string, n uint64) (*http.Request, error) {
		s := w.session(n)
		email := fmt.Sprintf("a%s.%d@add.%s", w.nonce, w.addSeq.Add(1), benchDomain)
		w.addedBy.Store(email, s.userID)
		body, _ := json.Marshal(map[string]string{"email": email})
		req, err := jsonRequest(fmt.Sprintf("%s/users/%d/emails/", base, s.userID), body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Cookie", w.cookie(s))
		req.Header.Set("X-CSRFToken", s.csrf)
		return req, nil
	}}
	// Both servers answer the added address with its id: each becomes an
	// unverified address for the verify runs.
	add.ok = func(body []byte) {
		var e struct {
			ID    int64  `json:"id"`
			Email string `json:"email"`
		}
		if json.Unmarshal(body, &e) != nil {
			return
		}
		if uid, ok := w.addedBy.LoadAndDelete(e.Email); ok {
			w.mu.Lock()
			w.pending = append(w.pending, pendingEmail{userID: uid.(int64), email: e.Email, emailID: e.ID})
			w.mu.Unlock()
		}
	}

	verify := &scenario{name: "verify link", want: http.StatusOK, build: func(base string, _ uint64) (*http.Request, error) {
		i := w.next.Add(1) - 1
		if i >= int64(len(w.links)) {
			w.repeats.Add(1)
			i %= int64(len(w.links))
		}
		req, err := http.NewRequest(http.MethodPost, base+w.links[i], nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		return req, nil
	}}
	return []*scenario{list, primary, add, verify, login}
}

// resetLinks, before a run of the verify scenario, makes every address
// unverified again and starts the links over.
func (w *workload) resetLinks(ctx context.Context, st *store.DB, sc *scenario) error {
	if sc.name != "verify link" {
		return nil
	}
	w.next.Store(0)
	return unverifyAll(ctx, st)
}

// pendingCount is how many unverified addresses are known.
func (w *workload) pendingCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// driveN sends n requests of sc one after another and counts the successes.
func driveN(ctx context.Context, base string, sc *scenario, n int) (ok int, firstErr string) {
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for i := range n {
		if ctx.Err() != nil {
			return ok, ctx.Err().Error()
		}
		req, err := sc.build(base, uint64(i))
		if err != nil {
			return ok, err.Error()
		}
		res, err := client.Do(req)
		if err != nil {
			firstErr = err.Error()
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != sc.want {
			if firstErr == "" {
				firstErr = fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
			}
			continue
		}
		ok++
		if sc.ok != nil {
			sc.ok(body)
		}
	}
	return ok, firstErr
}

// prepareLinks signs a verify link for every unverified address known so
// far from the from-th on, as the mail dispatcher does: claims {verify, user, email, state =
// the address's id}, with the servers' secret.
func (w *workload) prepareLinks(from int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.links = w.links[:0]
	for _, p := range w.pending[min(from, len(w.pending)):] {
		tok, err := w.signer.Sign(signer.Claims{Purpose: signer.PurposeVerify, UserID: p.userID, Email: p.email, State: p.emailID})
		if err != nil {
			return err
		}
		w.links = append(w.links, "/users/email-verify/"+tok+"/"+signer.EncodeUserID(p.userID))
	}
	w.next.Store(0)
	w.repeats.Store(0)
	if len(w.links) == 0 {
		return fmt.Errorf("no unverified addresses to make verify links for")
	}
	return nil
}

func jsonRequest(url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return req, nil
}
