package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestHarness runs the whole harness in a tiny configuration, so that
// `make test` keeps it working: SQLite always, PostgreSQL too (with the
// scale check and the statement count) when USEREMAIL_TEST_DATABASE_URL is
// set, and a variant built from HEAD with its statements unprepared. It
// checks that every scenario ran without errors on every server and that
// the report judges the targets and the variant; the figures themselves
// mean nothing at this size.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the servers")
	}
	cfg := config{
		users:       100,
		refUsers:    50,
		sessions:    20,
		duration:    time.Second,
		warmup:      200 * time.Millisecond,
		concurrency: []int{8},
		reps:        1,
		sqlite:      true,
		count:       10,
		log:         testLog{t},
		variant:     variantConfig{name: "unprepared", rev: "HEAD", dbParams: "prepared_statements=off"},
	}
	if url := os.Getenv("USEREMAIL_TEST_DATABASE_URL"); url != "" {
		cfg.postgres, cfg.pgURL = true, url
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	if cfg.postgres {
		want = 2
	}
	if len(rep.dialects) != want {
		t.Fatalf("%d dialects measured, want %d", len(rep.dialects), want)
	}
	for _, d := range rep.dialects {
		if len(d.rows) != 5 {
			t.Errorf("%s: %d scenarios measured, want 5", d.dialect, len(d.rows))
		}
		for _, r := range d.rows {
			for name, s := range map[string]summary{svcName: r.svc, variantName: r.variant, baseName: r.base} {
				if s.runs != cfg.reps || s.requests == 0 || s.errors != 0 {
					t.Errorf("%s %s %s: %d runs, %d requests, %d errors (first: %s)", d.dialect, r.scenario, name, s.runs, s.requests, s.errors, s.firstErr)
				}
			}
		}
		judged := map[string]bool{}
		for _, g := range rep.targets(d) {
			judged[strings.Fields(g.name)[0]] = true
		}
		for _, want := range []string{"list", "primary", "add", "verify", "login", "server", "useremail"} {
			if !judged[want] {
				t.Errorf("%s: no target judged for %q", d.dialect, want)
			}
		}
		if d.dialect != "postgres" {
			continue
		}
		if len(d.scale) != 2 {
			t.Errorf("postgres: %d scale rows, want 2", len(d.scale))
		}
		if len(d.counts) != 10 || len(d.explains) == 0 {
			t.Errorf("postgres: %d statement counts (want 10), %d plans", len(d.counts), len(d.explains))
		}
		for _, c := range d.counts {
			if c.requests != cfg.count || c.total() == 0 {
				t.Errorf("postgres: counting %s %s: %d of %d requests, %d statements (first error: %s)", c.scenario, c.target, c.requests, cfg.count, c.total(), c.firstErr)
			}
		}
		for _, x := range d.explains {
			if x.err != "" {
				t.Errorf("postgres: EXPLAIN %s: %s", x.sql, x.err)
			}
		}
	}

	out := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	if err := os.WriteFile(out, []byte("# Performance\n\nwritten by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second write replaces the first
		if err := rep.writeMarkdown(out, "test"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, _ := markers("test")
	for _, s := range []string{"written by hand", "| list emails | 8 |", "| verify link | 8 |", "| login | 8 |", "| login, unprepared | 8 |", `Variant "unprepared"`} {
		if !strings.Contains(doc, s) {
			t.Errorf("the Markdown lacks %q:\n%s", s, doc)
		}
	}
	if n := strings.Count(doc, begin); n != 1 {
		t.Errorf("the section is in the file %d times, want once", n)
	}
}
