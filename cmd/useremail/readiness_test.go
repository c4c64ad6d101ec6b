//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/useremail/useremail/mail/smtptest"
)

// signUps signs up n new addresses named after prefix and returns the
// answers.
func signUps(c *client, base, prefix string, n int) []loadAnswer {
	var out []loadAnswer
	for i := range n {
		la := loadAnswer{Started: time.Now(), Email: fmt.Sprintf("%s%03d@example.com", prefix, i)}
		la.UserID, la.answer = c.signUp(base, la.Email)
		out = append(out, la)
	}
	return out
}

// expectReadiness waits up to timeout for /readyz to answer status, and
// checks that /healthz says 200 meanwhile.
func expectReadiness(t *testing.T, p *proc, status int, timeout time.Duration, why string) {
	t.Helper()
	var a answer
	if !eventually(timeout, func() bool { a = get(p.base + "/readyz"); return a.Status == status }) {
		t.Errorf("/readyz %s: %v, want %d within %v", why, a, status, timeout)
	} else if status == http.StatusServiceUnavailable && a.Code != "unavailable" {
		t.Errorf("/readyz %s: code %q, want unavailable", why, a.Code)
	}
	if h := get(p.base + "/healthz"); h.Status != http.StatusOK {
		t.Errorf("/healthz %s: %v, want 200", why, h)
	}
}

// fillDisk writes a file into dir until its file system is full, and
// returns the file's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 256<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}

// TestReadinessFullDiskSQLite fills the file system of an SQLite database
// (a small tmpfs of the test's own): /readyz turns 503 while the store
// cannot write, every write answers 503 unavailable or succeeds (no 500),
// and once room is made, readiness and writes come back by themselves,
// with every committed sign-up mailed.
func TestReadinessFullDiskSQLite(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("needs to mount a 16 MiB tmpfs to fill (root with CAP_SYS_ADMIN; CI has it): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	dbURL := "sqlite:" + filepath.Join(dir, "useremail.db")
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(dbURL, sink)
	p := startServe(t, "useremail", env)
	c := newClient(true)
	answers := signUps(c, p.base, "before", 3)
	for _, a := range answers {
		if a.Status != http.StatusCreated {
			t.Fatalf("sign-up before the disk fills: %v %s", a, a.Body)
		}
	}

	filler := fillDisk(t, dir)
	expectReadiness(t, p, http.StatusServiceUnavailable, 10*time.Second, "with the disk full")
	full := signUps(c, p.base, "full", 20)
	refused := 0
	for _, a := range full {
		switch {
		case a.Status == http.StatusServiceUnavailable && a.Code == "unavailable":
			refused++
		case a.Status != http.StatusCreated:
			t.Errorf("sign-up with the disk full: %v %s, want 503 unavailable (or 201 while the log has room)", a, a.Body)
		}
	}
	t.Logf("with the disk full: %d of %d sign-ups answered 503 unavailable", refused, len(full))
	expectReadiness(t, p, http.StatusServiceUnavailable, time.Second, "after the sign-ups on a full disk")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freedAt := time.Now()
	expectReadiness(t, p, http.StatusOK, 20*time.Second, "once the disk has room again")
	t.Logf("ready again %v after the disk had room", time.Since(freedAt).Round(time.Millisecond))
	after := signUps(c, p.base, "after", 3)
	for _, a := range after {
		if a.Status != http.StatusCreated {
			t.Errorf("sign-up once the disk has room: %v %s", a, a.Body)
		}
	}
	answers = append(append(answers, full...), after...)
	db := openDB(t, dbURL)
	checkMailed(t, answers, waitOutboxSent(t, db, 60*time.Second), sink, nil)
	checkInvariants(t, db)
}

// TestReadinessStandbyPostgres turns the database into a standby (it
// restarts in recovery, read-only, as a demoted primary does): /readyz
// turns 503 and writes answer 503 unavailable rather than 500; once it is
// promoted, readiness and writes come back by themselves, with every
// committed sign-up mailed.
func TestReadinessStandbyPostgres(t *testing.T) {
	pg := startCluster(t)
	sink := smtptest.Start(t, smtptest.Options{})
	env := serveEnv(pg.url(), sink)
	p := startServe(t, "useremail", env)
	db := openDB(t, pg.url())
	c := newClient(true)
	answers := signUps(c, p.base, "before", 3)
	for _, a := range answers {
		if a.Status != http.StatusCreated {
			t.Fatalf("sign-up: %v %s", a, a.Body)
		}
	}

	pg.stop()
	if out, err := pg.run("sh", "-c", "touch "+filepath.Join(pg.data, "standby.signal")); err != nil {
		t.Fatalf("standby.signal: %v\n%s", err, out)
	}
	pg.start()
	expectReadiness(t, p, http.StatusServiceUnavailable, 10*time.Second, "with the database a standby")
	standby := signUps(c, p.base, "standby", 5)
	for _, a := range standby {
		if a.Status != http.StatusServiceUnavailable || a.Code != "unavailable" {
			t.Errorf("sign-up on a standby: %v %s, want 503 unavailable", a, a.Body)
		}
	}
	expectReadiness(t, p, http.StatusServiceUnavailable, time.Second, "after the sign-ups on a standby")

	if out, err := pg.run("pg_ctl", "-D", pg.data, "-w", "-t", "60", "promote"); err != nil {
		t.Fatalf("pg_ctl promote: %v\n%s", err, out)
	}
	promotedAt := time.Now()
	expectReadiness(t, p, http.StatusOK, 30*time.Second, "once the database is promoted")
	t.Logf("ready again %v after the promotion", time.Since(promotedAt).Round(time.Millisecond))
	after := signUps(c, p.base, "after", 3)
	for _, a := range after {
		if a.Status != http.StatusCreated {
			t.Errorf("sign-up once the database is promoted: %v %s", a, a.Body)
		}
	}
	answers = append(append(answers, standby...), after...)
	checkMailed(t, answers, waitOutboxSent(t, db, 60*time.Second), sink, nil)
	checkInvariants(t, db)
}
