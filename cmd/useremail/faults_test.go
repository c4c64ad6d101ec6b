package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
)

// pgCluster is a PostgreSQL server of the test's own, in its temporary
// folder, that the test can stop and start.
type pgCluster struct {
	t       testing.TB
	bin     string // the folder of initdb, pg_ctl and postgres
	data    string
	logFile string
	port    int
	runAs   string // OS user that runs the server ("" = the test's own)
}

// pgBinDir finds PostgreSQL's server programs: $USEREMAIL_TEST_PG_BIN, then
// the newest /usr/lib/postgresql/*/bin, then PATH.
func pgBinDir() string {
	if dir := os.Getenv("USEREMAIL_TEST_PG_BIN"); dir != "" {
		return dir
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	if len(matches) > 0 {
		return filepath.Dir(matches[0])
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// startCluster initializes and starts a PostgreSQL cluster on a free port;
// it skips the test where PostgreSQL's server programs are not installed.
// As root it runs the server as the postgres user (initdb refuses root).
func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin := pgBinDir()
	for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, prog)); bin == "" || err != nil {
			if os.Getenv("USEREMAIL_TEST_PG_BIN") != "" {
				// Named explicitly (as CI does): missing is a failure.
				t.Fatalf("USEREMAIL_TEST_PG_BIN=%s: %v", bin, err)
			}
			t.Skipf("needs PostgreSQL's server programs (initdb, pg_ctl, postgres); none found in /usr/lib/postgresql/*/bin or PATH (set USEREMAIL_TEST_PG_BIN)")
		}
	}
	c := &pgCluster{t: t, bin: bin, port: freePort(t)}
	dir := t.TempDir()
	home := filepath.Join(dir, "pg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root needs a postgres OS user to run PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The postgres user must reach its folder inside root's temporary one.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(home, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.runAs = "postgres"
	}
	c.data = filepath.Join(home, "data")
	c.logFile = filepath.Join(home, "server.log")
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\nmax_connections = 100\n", c.port)
	if out, err := c.run("sh", "-c", "cat >> "+filepath.Join(c.data, "postgresql.conf")+" <<'EOF'"+conf+"EOF\n"); err != nil {
		t.Fatalf("postgresql.conf: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_, _ = c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "-m", "immediate", "-w", "stop")
	})
	c.start()
	return c
}

// run runs a program as the cluster's OS user; names without a slash are
// PostgreSQL's programs.
func (c *pgCluster) run(prog string, args ...string) ([]byte, error) {
	if !strings.Contains(prog, "/") && prog != "sh" {
		prog = filepath.Join(c.bin, prog)
	}
	if c.runAs != "" {
		args = append([]string{"-u", c.runAs, "--", prog}, args...)
		prog = "runuser"
	}
	cmd := exec.Command(prog, args...)
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}

func (c *pgCluster) start() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data, "-l", c.logFile, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(c.logFile)
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stop stops the server the way an operator or an orchestrator would:
// active sessions are ended, new connections refused.
func (c *pgCluster) stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (c *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// loadAnswer is an answer of the fault test's load, stamped.
type loadAnswer struct {
	answer
	Email   string
	UserID  int64
	Started time.Time
}

// TestDatabaseRestart stops PostgreSQL in the middle of a load run and
// starts it again: meanwhile every request is answered promptly, with 503
// unavailable where it needs the database; afterwards the same process
// serves again without a restart, and nothing it committed is lost.
func TestDatabaseRestart(t *testing.T) {
	pg := startCluster(t)
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(pg.url(), sink)
	env["USEREMAIL_MAX_EMAILS"] = "1000" // the load adds many addresses to a few users
	p := startServe(t, "useremail", env)
	db := openDB(t, pg.url())
	pid := p.cmd.Process.Pid

	// A few users with sessions, for reads and adds beside the sign-ups.
	c := newClient(true)
	var sessions []userSession
	for i := range 4 {
		email := fmt.Sprintf("base%d@example.com", i)
		if _, a := c.signUp(p.base, email); a.Status != http.StatusCreated {
			t.Fatalf("sign-up: %v %s", a, a.Body)
		}
		s, a := c.login(p.base, email)
		if a.Status != http.StatusOK {
			t.Fatalf("login: %v", a)
		}
		sessions = append(sessions, s)
	}

	var (
		mu      sync.Mutex
		answers []loadAnswer
		stop    atomic.Bool
		seq     atomic.Int64
		wg      sync.WaitGroup
	)
	for w := range 6 {
		wg.Go(func() {
			pace := time.NewTicker(10 * time.Millisecond) // at most a request per tick per worker
			defer pace.Stop()
			for i := 0; !stop.Load(); i++ {
				<-pace.C
				la := loadAnswer{Started: time.Now()}
				switch i % 5 {
				case 0, 1, 2:
					la.Email = fmt.Sprintf("load%04d@example.com", seq.Add(1))
					la.UserID, la.answer = c.signUp(p.base, la.Email)
				case 3:
					s := sessions[w%len(sessions)]
					la.answer = c.do("GET", fmt.Sprintf("%s/users/%d/emails/", p.base, s.UserID), "GET /users/{id}/emails/", nil, s.header())
				case 4:
					s := sessions[w%len(sessions)]
					la.Email = fmt.Sprintf("added%04d@example.com", seq.Add(1))
					la.UserID = s.UserID
					la.answer = c.do("POST", fmt.Sprintf("%s/users/%d/emails/", p.base, s.UserID), "POST /users/{id}/emails/",
						map[string]string{"email": la.Email}, s.header())
				}
				mu.Lock()
				answers = append(answers, la)
				mu.Unlock()
			}
		})
	}
	since := func(t0 time.Time) []loadAnswer {
		mu.Lock()
		defer mu.Unlock()
		var out []loadAnswer
		for _, a := range answers {
			if !a.Started.Before(t0) {
				out = append(out, a)
			}
		}
		return out
	}
	const bound = 10 * time.Second // the longest any answer may take

	if !eventually(60*time.Second, func() bool { return len(since(time.Time{})) >= 30 }) {
		t.Fatal("fewer than 30 answers to the load in 60 s")
	}
	stoppedAt := time.Now()
	pg.stop()
	t.Logf("PostgreSQL stopped in %v", time.Since(stoppedAt).Round(time.Millisecond))
	outage := time.Now()

	// While it is down: readiness says so at once, liveness does not care.
	var readyID string
	for _, probe := range []struct {
		path   string
		status int
	}{{"/healthz", 200}, {"/readyz", 503}} {
		a := c.do("GET", p.base+probe.path, probe.path, nil, nil)
		if a.Status != probe.status || a.Elapsed > 3*time.Second {
			t.Errorf("%s during the outage: %v, want %d within 3s", probe.path, a, probe.status)
		}
		if probe.path == "/readyz" {
			readyID = a.RequestID
			if a.Code != "unavailable" {
				t.Errorf("/readyz during the outage: code %q, want unavailable", a.Code)
			}
		}
	}
	// The outage lasts until the dispatcher has met it, and the load a
	// score of times.
	if _, ok := p.logs.waitFor(30*time.Second, dispatcherMet); !ok {
		t.Error("the dispatcher did not meet the outage in 30 s")
	}
	unavailableSince := func(t0 time.Time) int {
		n := 0
		for _, a := range since(t0) {
			if a.Status == http.StatusServiceUnavailable {
				n++
			}
		}
		return n
	}
	if !eventually(30*time.Second, func() bool { return unavailableSince(outage) >= 20 }) {
		t.Errorf("%d answers 503 in the first 30 s of the outage, want 20", unavailableSince(outage))
	}
	restartAt := time.Now()
	pg.start()
	t.Logf("PostgreSQL was down for %v; started again in %v", restartAt.Sub(outage).Round(time.Millisecond), time.Since(restartAt).Round(time.Millisecond))

	// The same process becomes ready again, and serves.
	p.waitReady(t, 30*time.Second)
	readyAt := time.Now()
	t.Logf("ready again %v after PostgreSQL started", readyAt.Sub(restartAt).Round(time.Millisecond))
	if _, ok := p.logs.waitFor(30*time.Second, dispatcherRecovered); !ok {
		t.Error("the dispatcher did not recover in the 30 s after readiness")
	}
	if !eventually(30*time.Second, func() bool { return len(since(readyAt)) >= 30 }) {
		t.Errorf("%d answers in the first 30 s after readiness, want 30", len(since(readyAt)))
	}
	stop.Store(true)
	wg.Wait()

	if !p.running() || p.cmd.Process.Pid != pid {
		t.Fatalf("useremail did not survive the outage: %v", p.exitErr)
	}

	// Every answer came in time, and was a success, or 503 unavailable
	// while the database was away.
	var during, unavailable, after, afterFailed int
	for _, a := range since(time.Time{}) {
		switch {
		case a.Err != nil:
			t.Errorf("no answer: %v", a)
			continue
		case a.Elapsed > bound:
			t.Errorf("answer after %v (bound %v): %v", a.Elapsed, bound, a)
		case a.Status >= 500 && (a.Status != http.StatusServiceUnavailable || a.Code != "unavailable"):
			t.Errorf("a 5xx other than 503 unavailable: %v %s", a, a.Body)
		case a.Status >= 300 && a.Status != http.StatusServiceUnavailable:
			t.Errorf("unexpected answer: %v %s", a, a.Body)
		}
		if a.Status == http.StatusServiceUnavailable {
			unavailable++
			// In flight when the database stopped, or sent before it was back.
			if a.Started.Add(a.Elapsed).Before(stoppedAt) || a.Started.After(readyAt) {
				t.Errorf("503 outside the outage (started %v after the stop): %v", a.Started.Sub(stoppedAt).Round(time.Millisecond), a)
			}
		}
		if !a.Started.Before(outage) && a.Started.Before(restartAt) {
			during++
		}
		if a.Started.After(readyAt) {
			after++
			if a.Status >= 300 {
				afterFailed++
			}
		}
	}
	t.Logf("%d answers: %d while PostgreSQL was down, %d of them 503; %d after it came back (%d failed)",
		len(since(time.Time{})), during, unavailable, after, afterFailed)
	if unavailable == 0 || during == 0 {
		t.Errorf("the outage was not exercised: %d requests during it, %d answered 503", during, unavailable)
	}
	if after == 0 || afterFailed > 0 {
		t.Errorf("no full recovery: %d requests after readiness, %d failed", after, afterFailed)
	}

	// The outage left its traces in the logs with the request ids.
	if rec, ok := p.logs.find(func(r logRecord) bool { return r.Msg == "not ready: database" }); !ok {
		t.Error(`no "not ready: database" log line`)
	} else if rec.Attrs["request_id"] != readyID {
		t.Errorf("the readiness failure is logged without its request id %q: %s", readyID, rec.Raw)
	}
	if rec, ok := p.logs.find(func(r logRecord) bool { return r.Msg == "request" && r.Attrs["status"] == float64(503) }); !ok || rec.Level != "WARN" {
		t.Errorf("a 503 request line at WARN: %v %s", ok, rec.Raw)
	}

	// Nothing committed was lost: every 201 exists, and every queued mail
	// is delivered, once: by the dispatcher that outlived the outage, or,
	// for the claims that the outage interrupted, after their lease.
	for _, a := range since(time.Time{}) {
		if a.Status != http.StatusCreated {
			continue
		}
		var n int
		if err := db.SQL().Get(&n, `SELECT COUNT(*) FROM emails WHERE user_id = $1 AND email = $2`, a.UserID, a.Email); err != nil || n != 1 {
			t.Errorf("%s answered 201 (%s for user %d) but is not in the database: %v", a.Route, a.Email, a.UserID, err)
		}
	}
	rows := settleOutbox(t, db, p, env)
	delivered := checkDeliveredOnce(t, rows, sink, nil)
	verified := map[string]bool{}
	for _, r := range rows {
		if _, ok := delivered[r.ID]; ok && r.Kind == "verify" {
			verified[r.Recipient] = true
		}
	}
	for _, a := range since(time.Time{}) {
		if a.Status == http.StatusCreated && !verified[a.Email] {
			t.Errorf("%s answered 201 for %s, but no verification mail reached it", a.Route, a.Email)
		}
	}
	checkInvariants(t, db)
	for _, rec := range p.logs.all() {
		if rec.Level == "ERROR" && rec.Msg != "mail: dispatch failed" && rec.Msg != "mail: cannot record outcome" {
			t.Errorf("an error besides the dispatcher's claim failures: %s", rec.Raw)
		}
	}
}

// settleOutbox lets the process that outlived the outage send what it can
// and stops it, then returns the outbox rows, all sent. A claim whose commit
// reached the database just as it stopped (the dispatcher saw an error), or
// whose report could not be written, leaves its rows leased ("sending")
// until the lease ends, minutes later; then a dispatcher takes them over.
// Once the process has drained, rows still leased are those: the test ends
// their lease now, as time would, and a second process must send them.
func settleOutbox(t *testing.T, db *store.DB, p *proc, env map[string]string) []outboxRow {
	t.Helper()
	eventually(60*time.Second, func() bool {
		var queued int
		if err := db.SQL().Get(&queued, `SELECT COUNT(*) FROM outbox WHERE status = 'queued'`); err != nil {
			t.Fatalf("outbox: %v", err)
		}
		return queued == 0
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.waitExit(30*time.Second) || p.exitCode() != 0 {
		t.Fatalf("after SIGTERM: exited %v with code %d (%v)", !p.running(), p.exitCode(), p.exitErr)
	}
	var stuck []int64
	if err := db.SQL().Select(&stuck, `SELECT id FROM outbox WHERE status = 'sending'`); err != nil {
		t.Fatalf("outbox: %v", err)
	}
	if len(stuck) > 0 {
		for _, id := range stuck {
			for _, rec := range p.logs.all() {
				if rec.Attrs["outbox_id"] == float64(id) {
					t.Logf("leased row %d: %s", id, rec.Raw)
				}
			}
		}
		t.Logf("%d rows stay leased by claims the outage interrupted; ending their lease: %v", len(stuck), stuck)
		if _, err := db.SQL().Exec(`UPDATE outbox SET next_attempt_at = now() WHERE status = 'sending' AND id = ANY($1)`, pq.Array(stuck)); err != nil {
			t.Fatalf("ending leases: %v", err)
		}
	}
	startServe(t, "after", env)
	return waitOutboxSent(t, db, 60*time.Second)
}

// unrecordedDeliveries returns the outbox ids whose delivery the
// dispatcher could not record (the database was down when it tried to
// mark them sent): after their lease they are sent again, a duplicate that
// the contract allows outside normal operation (the Message-ID is the same).
func unrecordedDeliveries(logs *logLines) map[int64]bool {
	out := map[int64]bool{}
	for _, rec := range logs.all() {
		if rec.Msg == "mail: cannot record outcome" && rec.Attrs["report"] == "mark sent" {
			if id, ok := rec.Attrs["outbox_id"].(float64); ok {
				out[int64(id)] = true
			}
		}
	}
	return out
}

// dispatcherMet matches the log line of a dispatcher that met a database
// fault: in a claim, or in the reports of a batch under way, whichever it
// was doing.
func dispatcherMet(r logRecord) bool {
	return r.Msg == "mail: dispatch failed" || r.Msg == "mail: cannot record outcome yet; retrying until shortly before the lease ends"
}

// dispatcherRecovered matches the log line of a dispatcher that works again
// after a fault it met (dispatcherMet).
func dispatcherRecovered(r logRecord) bool {
	return r.Msg == "mail: dispatch works again" || r.Msg == "mail: outcome recorded after the database came back"
}
