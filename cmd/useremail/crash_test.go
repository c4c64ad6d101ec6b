package main

// Mail delivery that never loses a message: a process killed in the middle
// of a burst of requests, and a database that goes away while a mail is on
// its way.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// TestCrashMidBurst kills `useremail serve` with SIGKILL in the middle of a
// burst of sign-ups and added addresses, at a few points, and checks that
// every address committed by then (whether or not its client saw the 201)
// has its verification mail within 10 s: of the restart on the same SQLite
// file, or of the death while another replica runs on PostgreSQL, not
// after the dead process's leases ran out. Then every queued mail was
// delivered, and the only duplicates are mails that were in flight at the
// kill, sent once by the dead process and once by a live one, with the
// Message-ID of the first copy.
func TestCrashMidBurst(t *testing.T) {
	for _, dialect := range []store.Dialect{store.Postgres, store.SQLite} {
		t.Run(string(dialect), func(t *testing.T) {
			for _, kill := range []struct {
				name  string
				after int // answers before the kill
			}{{"early", 8}, {"middle", 60}} {
				t.Run(kill.name, func(t *testing.T) {
					crashMidBurst(t, databaseURL(t, dialect), kill.after)
				})
			}
		})
	}
}

// crashFirstApp is the PostgreSQL application_name of the process that
// TestCrashMidBurst kills.
const crashFirstApp = "useremail-crash-first"

// crashFirstFrom is the sender address of the process that
// TestCrashMidBurst kills, so that the sink tells its mails from the
// others' (the Message-ID, taken from the domain, stays the same).
const crashFirstFrom = "crash-first@example.com"

// deadMailWithin is how soon the mail a dead process had claimed must be
// out: after its restart (SQLite) or its death (PostgreSQL, with another
// replica running).
const deadMailWithin = 10 * time.Second

// burstAnswer is one request of the burst, as its client saw it.
type burstAnswer struct {
	answer
	UserID int64
	Email  string
}

func crashMidBurst(t *testing.T, url string, killAfter int) {
	const (
		users   = 8  // with sessions, before the burst
		workers = 12 // concurrent clients
		after   = 24 // requests of the burst sent after the restart
	)
	// A relay that takes a while per mail: the dispatcher has a backlog and
	// sends in flight when the process dies.
	sink := smtptest.Start(t, smtptest.Options{DataDelay: 20 * time.Millisecond})
	env := serveEnv(url, sink)
	env["USEREMAIL_MAX_EMAILS"] = "1000"
	firstEnv := maps.Clone(env)
	firstEnv["USEREMAIL_MAIL_FROM"] = crashFirstFrom
	postgres := strings.HasPrefix(url, "postgres")
	if postgres {
		// Named, so that the test can tell when the dead process's
		// connections are gone.
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		firstEnv["USEREMAIL_DATABASE_URL"] = url + sep + "application_name=" + crashFirstApp
	}
	first := startServe(t, "first", firstEnv)
	db := openDB(t, url)
	var other *proc // PostgreSQL: a replica that outlives the first
	if postgres {
		other = startServe(t, "other", env)
	}

	c := newClient(true)
	var sessions []userSession
	for i := range users {
		email := fmt.Sprintf("crash-user%d@example.com", i)
		if _, a := c.signUp(first.base, email); a.Status != http.StatusCreated {
			t.Fatalf("sign-up: %v %s", a, a.Body)
		}
		s, a := c.login(first.base, email)
		if a.Status != http.StatusOK {
			t.Fatalf("login: %v", a)
		}
		sessions = append(sessions, s)
	}

	var (
		mu      sync.Mutex
		answers []burstAnswer
		seq     atomic.Int64
	)
	// request sends request n of the burst to base: three in four add an
	// address to one of the users, one in four signs up a new user.
	request := func(base string, n int64) burstAnswer {
		var ba burstAnswer
		if n%4 == 3 {
			ba.Email = fmt.Sprintf("crash-new%04d@example.com", n)
			ba.UserID, ba.answer = c.signUp(base, ba.Email)
		} else {
			s := sessions[n%users]
			ba.Email, ba.UserID = fmt.Sprintf("crash-added%04d@example.com", n), s.UserID
			ba.answer = c.do("POST", fmt.Sprintf("%s/users/%d/emails/", base, s.UserID), "POST /users/{id}/emails/",
				map[string]string{"email": ba.Email}, s.header())
		}
		mu.Lock()
		answers = append(answers, ba)
		mu.Unlock()
		return ba
	}

	// The burst, until the kill: each worker stops at its first request
	// that gets no answer.
	var killed atomic.Bool
	var killOnce sync.Once
	var killedAt time.Time
	var answered atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				a := request(first.base, seq.Add(1))
				if a.Err != nil {
					if !killed.Load() {
						t.Errorf("no answer before the kill: %v", a)
					}
					return
				}
				if answered.Add(1) >= int64(killAfter) {
					killOnce.Do(func() {
						killed.Store(true)
						killedAt = time.Now()
						_ = first.cmd.Process.Signal(syscall.SIGKILL)
					})
				}
			}
		})
	}
	wg.Wait()
	if !first.waitExit(10 * time.Second) {
		t.Fatal("the first process survived SIGKILL")
	}

	// PostgreSQL still runs what the dead process had sent before it died
	// (a claim can commit after the kill) until each of its backends reads
	// the end of its connection: wait for them to be gone.
	if postgres {
		var n int
		gone := func() bool {
			if err := db.SQL().Get(&n, `SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1`, crashFirstApp); err != nil {
				t.Fatal(err)
			}
			return n == 0
		}
		if !eventually(30*time.Second, gone) {
			t.Fatalf("%d connections of the killed process still open after 30 s", n)
		}
	}

	// What the dead process left: rows leased to it, some of them sent
	// with their report never written.
	var leased int
	if err := db.SQL().Get(&leased, `SELECT COUNT(*) FROM outbox WHERE status = 'sending'`); err != nil {
		t.Fatal(err)
	}
	sentBefore := len(sink.Mails())

	// The addresses committed before the kill; each must have its
	// verification mail soon, from a live process.
	var listed []string
	if err := db.SQL().Select(&listed, `SELECT email FROM emails ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	second, since, from := other, killedAt, "the death"
	if !postgres {
		since, from = time.Now(), "the restart"
		second = launchServe(t, "second", env)
	}
	mailedIn(t, sink, listed, since, from)
	if rec, ok := second.logs.find(func(r logRecord) bool { return strings.HasPrefix(r.Msg, "mail: took back the claims") }); ok {
		t.Logf("%s: %s", second.name, rec.Raw)
	}
	if !postgres {
		if err := second.waitServing(90 * time.Second); err != nil {
			t.Fatalf("second: %v\n%s", err, second.logs.tail(40))
		}
	}
	for range after {
		if a := request(second.base, seq.Add(1)); a.Err != nil {
			t.Errorf("no answer after the kill: %v", a)
		}
	}
	rows := waitOutboxSent(t, db, 60*time.Second)

	// The clients' view: every 201 is in the table; requests cut by the
	// kill may or may not have committed.
	var created, cut int
	seen := map[string]bool{}
	for _, a := range answers {
		switch {
		case a.Err != nil:
			cut++
		case a.Status == http.StatusCreated:
			created++
			seen[a.Email] = true
		default:
			t.Errorf("unexpected answer: %v %s", a.answer, truncate(string(a.Body), 300))
		}
	}

	type emailRow struct {
		ID     int64  `db:"id"`
		UserID int64  `db:"user_id"`
		Email  string `db:"email"`
	}
	var emails []emailRow
	if err := db.SQL().Select(&emails, `SELECT id, user_id, email FROM emails ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	committed := map[int64]emailRow{}
	unseen := 0
	for _, e := range emails {
		committed[e.ID] = e
		if !seen[e.Email] && !strings.HasPrefix(e.Email, "crash-user") {
			unseen++ // committed, but its client never saw the 201
		}
	}
	inTable := map[string]bool{}
	for _, e := range emails {
		inTable[e.Email] = true
	}
	for email := range seen {
		if !inTable[email] {
			t.Errorf("%s was answered 201 but is not in the emails table", email)
		}
	}

	// The outbox's view: the verification row of each address, by the
	// email id in its payload.
	var payloads []struct {
		ID      int64  `db:"id"`
		Payload string `db:"payload"`
	}
	if err := db.SQL().Select(&payloads, `SELECT id, payload FROM outbox`); err != nil {
		t.Fatal(err)
	}
	verifyOf := map[int64][]int64{} // email id → outbox ids
	byID := map[int64]outboxRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	emailOfRow := map[int64]int64{}
	for _, p := range payloads {
		if byID[p.ID].Kind != mail.KindVerify {
			continue
		}
		var pl mail.Payload
		if err := json.Unmarshal([]byte(p.Payload), &pl); err != nil {
			t.Fatalf("outbox row %d: payload %q: %v", p.ID, p.Payload, err)
		}
		verifyOf[pl.EmailID] = append(verifyOf[pl.EmailID], p.ID)
		emailOfRow[p.ID] = pl.EmailID
	}

	// The sink's view.
	delivered := mailsByOutboxID(t, sink)
	byDead := mailsFrom(t, sink, crashFirstFrom)
	var duplicates []int64
	for id, copies := range delivered {
		row, ok := byID[id]
		if !ok {
			t.Errorf("the sink got %d mails for outbox id %d, which is not in the outbox", len(copies), id)
			continue
		}
		for _, m := range copies {
			if !strings.EqualFold(m.To, row.Recipient) {
				t.Errorf("outbox row %d (%s) went to %q, want %q", id, row.Kind, m.To, row.Recipient)
			}
			if m.MessageID != copies[0].MessageID {
				t.Errorf("outbox row %d was delivered with two Message-IDs: %s and %s", id, copies[0].MessageID, m.MessageID)
			}
		}
		if len(copies) > 1 {
			duplicates = append(duplicates, id)
			if byDead[id] != 1 || len(copies) > 2 {
				t.Errorf("outbox row %d (%s to %s) was delivered %d times, %d of them by the killed process: not a mail in flight at the kill",
					id, row.Kind, row.Recipient, len(copies), byDead[id])
			}
		}
		if row.Kind == mail.KindVerify {
			e, ok := committed[emailOfRow[id]]
			if !ok || !strings.EqualFold(e.Email, row.Recipient) {
				t.Errorf("verification mail %d to %s is for no address of the emails table", id, row.Recipient)
			}
		}
	}
	for _, e := range emails {
		ids := verifyOf[e.ID]
		if len(ids) != 1 {
			t.Errorf("address %d (%s) has %d verification rows in the outbox, want 1", e.ID, e.Email, len(ids))
			continue
		}
		if len(delivered[ids[0]]) == 0 || !strings.EqualFold(delivered[ids[0]][0].To, e.Email) {
			t.Errorf("address %d (%s) never got its verification mail (outbox row %d)", e.ID, e.Email, ids[0])
		}
	}
	for _, r := range rows {
		if len(delivered[r.ID]) == 0 {
			t.Errorf("outbox row %d (%s to %s) is sent but the sink never got it", r.ID, r.Kind, r.Recipient)
		}
	}
	checkInvariants(t, db)
	t.Logf("killed after %d answers: %d requests, %d answered 201, %d cut by the kill; %d addresses (%d committed without the client seeing it); "+
		"%d outbox rows, %d delivered before %s, %d leased at the kill, %d delivered twice %v",
		killAfter, len(answers), created, cut, len(emails), unseen, len(rows), sentBefore, from, leased, len(duplicates), duplicates)
	if cut == 0 {
		t.Log("no request was in flight at the kill")
	}
}

// mailedIn waits until the sink has a verification mail to each of addrs,
// and fails the test unless all came within deadMailWithin of since (the
// restart or the death, as from says). It waits on for up to three minutes
// (a lease and more) to log when they all came.
func mailedIn(t *testing.T, sink *smtptest.Server, addrs []string, since time.Time, from string) {
	t.Helper()
	var missing []string
	allMailed := func() bool {
		got := map[string]bool{}
		for _, m := range sink.Mails() {
			s, err := parseMail(m)
			if err != nil {
				t.Fatalf("a mail the sink accepted: %v", err)
			}
			for _, link := range s.Links {
				if strings.HasPrefix(link, publicURL+"/users/email-verify/") {
					got[strings.ToLower(s.To)] = true
				}
			}
		}
		missing = missing[:0]
		for _, a := range addrs {
			if !got[strings.ToLower(a)] {
				missing = append(missing, a)
			}
		}
		return len(missing) == 0
	}
	if eventually(time.Until(since.Add(deadMailWithin)), allMailed) {
		t.Logf("all %d addresses committed before the kill had their mail %v after %s",
			len(addrs), time.Since(since).Round(10*time.Millisecond), from)
		return
	}
	t.Errorf("%d of %d addresses committed before the kill had no mail %v after %s, e.g. %v",
		len(missing), len(addrs), deadMailWithin, from, missing[:min(len(missing), 5)])
	if eventually(time.Until(since.Add(3*time.Minute)), allMailed) {
		t.Logf("all had their mail %v after %s", time.Since(since).Round(10*time.Millisecond), from)
	} else {
		t.Errorf("%d still without mail 3 minutes after %s", len(missing), from)
	}
}

// mailsFrom counts the mails of the sink by outbox id that came from the
// sender address from.
func mailsFrom(t testing.TB, sink *smtptest.Server, from string) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	for _, m := range sink.Mails() {
		if !strings.EqualFold(m.From, from) {
			continue
		}
		s, err := parseMail(m)
		if err != nil {
			t.Fatalf("a mail the sink accepted: %v", err)
		}
		out[s.OutboxID]++
	}
	return out
}

// TestReportSurvivesDatabaseRestart stops PostgreSQL (a server of the
// test's own) just after a mail was handed to the SMTP server, before the
// dispatcher records it. A short outage: the report is tried again until
// the database is back, the row is sent once and never claimed again. An
// outage that outlasts the lease: the report gives up shortly before the
// lease ends, and the claim after the lease sends the mail again, with the
// same Message-ID.
func TestReportSurvivesDatabaseRestart(t *testing.T) {
	pg := startCluster(t)
	ctx := context.Background()
	db := openDB(t, pg.url())
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, e, err := db.CreateUser(ctx, store.NewUser{Email: "alice@example.com", Key: "alice@example.com", PasswordHash: "h"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sign, err := signer.New([][]byte{[]byte("report-test-secret-0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		outage time.Duration
		lease  time.Duration
		sends  int // deliveries of the mail in the end
	}{
		{"short outage", 3 * time.Second, 2 * time.Minute, 1},
		// A short lease: with a 1 s send timeout, a send may start in its
		// first 2 s (see mail.Config.Lease).
		{"outage past the lease", 15 * time.Second, 13 * time.Second, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := smtptest.Start(t, smtptest.Options{})
			cfg, err := mail.ParseSMTPURL(sink.URL())
			if err != nil {
				t.Fatal(err)
			}
			smtpSender, err := mail.NewSMTPSender(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer smtpSender.Close()
			id, err := db.EnqueueMessage(ctx, mail.Verify(u.ID, "alice@example.com", e.ID), time.Now())
			if err != nil {
				t.Fatal(err)
			}

			var restarted sync.WaitGroup
			var once sync.Once
			sender := senderFunc(func(ctx context.Context, m mail.Message) error {
				if err := smtpSender.Send(ctx, m); err != nil {
					return err
				}
				once.Do(func() {
					// The mail left; now the database goes away.
					if out, err := pg.run("pg_ctl", "-D", pg.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
						t.Errorf("pg_ctl stop: %v\n%s", err, out)
					}
					// It comes back once the outage has lasted its time.
					restarted.Add(1)
					time.AfterFunc(tt.outage, func() {
						defer restarted.Done()
						if out, err := pg.run("pg_ctl", "-D", pg.data, "-l", pg.logFile, "-w", "-t", "60", "start"); err != nil {
							t.Errorf("pg_ctl start: %v\n%s", err, out)
						}
					})
				})
				return nil
			})
			var buf lockedBuffer
			d, err := mail.NewDispatcher(mail.Config{
				DB: db, Signer: sign, Sender: sender, PublicURL: publicURL, From: "useremail@example.com",
				Lease: tt.lease, SendTimeout: time.Second,
				Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if n, err := d.RunOnce(ctx); err != nil || n != 1 {
				t.Fatalf("RunOnce = %d, %v", n, err)
			}
			reported := time.Since(start)
			t.Logf("the report ended %v after the claim", reported.Round(time.Millisecond))
			restarted.Wait()
			logs := &logLines{}
			logs.read(strings.NewReader(buf.String()))

			waitRow := func(what string, cond func(store.Message) bool) {
				var m store.Message
				var err error
				if !eventually(30*time.Second, func() bool { m, err = db.MessageByID(ctx, id); return err == nil && cond(m) }) {
					t.Fatalf("%s: row %+v, %v", what, m, err)
				}
			}
			if tt.sends == 1 {
				waitRow("sent on the first attempt", func(m store.Message) bool { return m.Status == store.StatusSent && m.Attempts == 1 })
				if _, ok := logs.find(func(r logRecord) bool { return r.Msg == "mail: outcome recorded after the database came back" }); !ok {
					t.Errorf("no record of the retried report:\n%s", logs.tail(20))
				}
				if n, err := d.RunOnce(ctx); err != nil || n != 0 {
					t.Fatalf("RunOnce after the report = %d, %v; want nothing to claim", n, err)
				}
			} else {
				if _, ok := logs.find(func(r logRecord) bool {
					return r.Msg == "mail: cannot record outcome" && r.Level == "ERROR" && r.Attrs["report"] == "mark sent"
				}); !ok {
					t.Errorf("no record of the report given up:\n%s", logs.tail(20))
				}
				if reported > tt.lease {
					t.Errorf("the report was tried for %v, past the lease of %v", reported, tt.lease)
				}
				waitRow("still leased", func(m store.Message) bool { return m.Status == store.StatusSending })
				// Claims find nothing until the lease ends; then one takes the row over.
				var n int
				if !eventually(tt.lease+30*time.Second, func() bool { n, err = d.RunOnce(ctx); return err != nil || n > 0 }) || err != nil || n != 1 {
					t.Fatalf("RunOnce after the lease = %d, %v; want the row taken over", n, err)
				}
				waitRow("sent on the second attempt", func(m store.Message) bool { return m.Status == store.StatusSent && m.Attempts == 2 })
			}
			mails := mailsByOutboxID(t, sink)[id]
			if len(mails) != tt.sends {
				t.Fatalf("the sink got the mail %d times, want %d", len(mails), tt.sends)
			}
			for _, m := range mails {
				if m.MessageID != mails[0].MessageID {
					t.Fatalf("the copies have different Message-IDs: %s and %s", mails[0].MessageID, m.MessageID)
				}
			}
		})
	}
}

// senderFunc adapts a function to mail.Sender.
type senderFunc func(ctx context.Context, m mail.Message) error

func (f senderFunc) Send(ctx context.Context, m mail.Message) error { return f(ctx, m) }

// lockedBuffer is a strings.Builder safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
