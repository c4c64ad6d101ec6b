package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/useremail/useremail/mail/smtptest"
	"github.com/useremail/useremail/store"
)

// TestSQLiteOneServe: a second serve on the SQLite file of a running one
// exits at once, before serving and without retrying, with an error that
// names the file and the first's pid; the admin commands run beside the
// first; once the first has stopped, a serve starts on the file again.
func TestSQLiteOneServe(t *testing.T) {
	url := databaseURL(t, store.SQLite)
	env := serveEnv(url, smtptest.Start(t, smtptest.Options{}))
	first := startServe(t, "first", env)

	second := launchServe(t, "second", env)
	if !second.waitExit(60 * time.Second) {
		t.Fatalf("a second serve on %s still runs:\n%s", url, second.logs.tail(20))
	}
	want := fmt.Sprintf("useremail: %s is in use by another useremail serve (pid %d)", url, first.cmd.Process.Pid)
	if _, ok := second.logs.find(func(r logRecord) bool { return r.Raw == want }); !ok || second.exitCode() != 1 {
		t.Errorf("the second serve exited with code %d; want 1 and the line %q in:\n%s", second.exitCode(), want, second.logs.tail(20))
	}
	for _, r := range second.logs.all() {
		if r.Msg == "serving" || r.Msg == "database not reachable yet; retrying" || r.Msg == "migration applied" {
			t.Errorf("the second serve went on: %s", r.Raw)
		}
	}

	for _, args := range [][]string{{"outbox", "list"}, {"audit", "--user", "1"}, {"migrate"}} {
		if r := runBinary(t, t.TempDir(), env, "", args...); r.code != 0 {
			t.Errorf("useremail %s beside the serve: %v", strings.Join(args, " "), r)
		}
	}
	if a := get(first.base + "/readyz"); a.Status != http.StatusOK {
		t.Errorf("the first serve after all that: /readyz %v", a)
	}

	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !first.waitExit(30 * time.Second) {
		t.Fatal("the first serve did not stop on SIGTERM")
	}
	startServe(t, "third", env)
}
