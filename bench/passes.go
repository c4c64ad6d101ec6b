package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/useremail/useremail/bench/pgcount"
)

// countRow is what the statement-counting pass saw for one scenario and
// server.
type countRow struct {
	scenario   string
	target     string
	requests   int // successful requests sent
	stmts      []pgcount.Stat
	roundTrips int
	firstErr   string
}

func (c countRow) perRequest(n int) float64 {
	if c.requests == 0 {
		return 0
	}
	return float64(n) / float64(c.requests)
}

func (c countRow) total() int {
	n := 0
	for _, s := range c.stmts {
		n += s.Count
	}
	return n
}

// explainRow is the plan of one statement the service sent.
type explainRow struct {
	sql       string
	plan      string
	scenarios []string
	seqScan   bool
	err       string
}

// countStatements sends cfg.count requests of each scenario, one after
// another, to a service and a baseline that reach PostgreSQL through a
// counting proxy, and then EXPLAINs every statement the service sent with
// the parameters it sent.
func (e *env) countStatements(ctx context.Context, d *dialectReport, db *database, w *workload, scenarios []*scenario) error {
	cfg := e.cfg
	u, err := url.Parse(db.url)
	if err != nil {
		return err
	}
	counter, err := pgcount.New(u.Host)
	if err != nil {
		return err
	}
	defer counter.Close()
	u.Host = counter.Addr()
	proxied := &database{name: db.name + "-count", url: u.String()}
	// The two run at once: requests go to one at a time, and the baseline
	// has no dispatcher to take the service's mail.
	procs := map[string]*proc{}
	for _, name := range []string{svcName, baseName} {
		p, err := e.start(ctx, e.target(name), proxied)
		if err != nil {
			return err
		}
		defer p.stop()
		procs[name] = p
	}
	cfg.logf("postgres: counting statements, %d requests per scenario", cfg.count)
	mark := w.pendingCount()
	seen := map[string][]string{} // SQL -> scenarios
	params := map[string][]*string{}
	var order []string
	for _, sc := range scenarios {
		if !cfg.want(sc.name) {
			continue
		}
		if sc.name == "verify link" {
			if err := w.prepareLinks(mark); err != nil {
				return err
			}
		}
		for _, name := range []string{svcName, baseName} {
			// Let the dispatcher's and the janitor's start-up work pass.
			time.Sleep(300 * time.Millisecond)
			counter.Reset()
			ok, firstErr := driveN(ctx, procs[name].base, sc, cfg.count)
			if name == svcName {
				if _, err := drain(ctx, db.store); err != nil {
					return err
				}
			}
			time.Sleep(300 * time.Millisecond)
			stmts, rt := counter.Snapshot()
			c := countRow{scenario: sc.name, target: name, requests: ok, stmts: stmts, roundTrips: rt, firstErr: firstErr}
			d.counts = append(d.counts, c)
			cfg.logf("  %s %s: %.1f statements, %.1f round trips per request", sc.name, name, c.perRequest(c.total()), c.perRequest(rt))
			if name != svcName {
				continue
			}
			for _, s := range stmts {
				if _, ok := seen[s.SQL]; !ok {
					order = append(order, s.SQL)
					params[s.SQL] = s.Params
				}
				if l := seen[s.SQL]; len(l) == 0 || l[len(l)-1] != sc.name {
					seen[s.SQL] = append(l, sc.name)
				}
			}
		}
	}
	for _, q := range order {
		upper := strings.ToUpper(q)
		if !strings.HasPrefix(upper, "SELECT") && !strings.HasPrefix(upper, "UPDATE") && !strings.HasPrefix(upper, "DELETE") {
			continue
		}
		if strings.Contains(upper, "PG_NOTIFY") {
			continue
		}
		ex := explainRow{sql: q, scenarios: seen[q]}
		args := make([]any, len(params[q]))
		for i, p := range params[q] {
			if p != nil {
				args[i] = textParam(*p)
			}
		}
		var lines []string
		if err := db.store.SQL().SelectContext(ctx, &lines, "EXPLAIN "+q, args...); err != nil {
			ex.err = err.Error()
		}
		ex.plan = strings.Join(lines, "\n")
		ex.seqScan = strings.Contains(ex.plan, "Seq Scan")
		d.explains = append(d.explains, ex)
	}
	return nil
}

// textParam turns a parameter as lib/pq sent it (text format) back into
// what to hand lib/pq to send the same: bytea travels as \x and hex.
func textParam(v string) any {
	if h, ok := strings.CutPrefix(v, `\x`); ok {
		if b, err := hex.DecodeString(h); err == nil {
			return b
		}
	}
	return v
}

// profileRow is what the profiling pass saw for one scenario and server.
type profileRow struct {
	scenario     string
	target       string
	requests     int
	allocsPerReq float64
	bytesPerReq  float64
	cpuTop       string
	cpuFile      string
	allocFile    string
}

// servesPprof reports whether the server serves net/http/pprof.
func servesPprof(p *proc) bool {
	res, err := http.Get(pprofURL(p) + "/debug/pprof/")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func pprofURL(p *proc) string { return "http://" + pprofAddr(strings.TrimPrefix(p.base, "http://")) }

// profile runs each scenario once more per target at the highest
// concurrency, with a CPU profile over the run and the allocation counters
// before and after it.
func (e *env) profile(ctx context.Context, d *dialectReport, db *database, w *workload, scenarios []*scenario) error {
	cfg := e.cfg
	if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
		return err
	}
	conc := cfg.concurrency[len(cfg.concurrency)-1]
	mark := w.pendingCount()
	d.pprof = true
	for _, sc := range scenarios {
		if !cfg.want(sc.name) {
			continue
		}
		if sc.name == "verify link" {
			if err := w.prepareLinks(mark); err != nil {
				return err
			}
		}
		for _, t := range e.targets {
			pr, err := e.profileOnce(ctx, d, db, w, sc, conc, &t)
			if err != nil {
				return err
			}
			if pr == nil {
				d.pprof = false // a service built without USEREMAIL_DEBUG_ADDR
				continue
			}
			d.profiles = append(d.profiles, *pr)
			cfg.logf("  profile %s %s: %d requests, %.0f allocs and %.1f KiB per request", sc.name, t.name, pr.requests, pr.allocsPerReq, pr.bytesPerReq/1024)
		}
	}
	return nil
}

// profileOnce is one profiled run of t; nil when t serves no pprof.
func (e *env) profileOnce(ctx context.Context, d *dialectReport, db *database, w *workload, sc *scenario, conc int, t *target) (*profileRow, error) {
	if err := w.resetLinks(ctx, db.store, sc); err != nil {
		return nil, err
	}
	p, err := e.start(ctx, t, db)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if !servesPprof(p) {
		return nil, nil
	}
	if e.cfg.warmup > 0 {
		drive(ctx, p.base, sc, conc, e.cfg.warmup)
	}
	stem := filepath.Join(e.cfg.profileDir, fmt.Sprintf("%s-%s-%s", d.dialect, t.name, strings.Fields(sc.name)[0]))
	pp := pprofURL(p)
	before, err := memStats(pp)
	if err != nil {
		return nil, err
	}
	secs := max(1, int(e.cfg.duration.Seconds()))
	cpuDone := make(chan error, 1)
	go func() { cpuDone <- fetch(pp+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), stem+".cpu.pb.gz") }()
	time.Sleep(100 * time.Millisecond)
	res := drive(ctx, p.base, sc, conc, time.Duration(secs)*time.Second)
	if err := <-cpuDone; err != nil {
		return nil, err
	}
	after, err := memStats(pp)
	if err != nil {
		return nil, err
	}
	if err := fetch(pp+"/debug/pprof/allocs", stem+".allocs.pb.gz"); err != nil {
		return nil, err
	}
	if t.service {
		if _, err := drain(ctx, db.store); err != nil {
			return nil, err
		}
	} else if err := clearBaselineMail(ctx, db.store); err != nil {
		return nil, err
	}
	pr := &profileRow{scenario: sc.name, target: t.name, requests: res.requests, cpuFile: stem + ".cpu.pb.gz", allocFile: stem + ".allocs.pb.gz"}
	if res.requests > 0 {
		pr.allocsPerReq = float64(after["Mallocs"]-before["Mallocs"]) / float64(res.requests)
		pr.bytesPerReq = float64(after["TotalAlloc"]-before["TotalAlloc"]) / float64(res.requests)
	}
	if out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", pr.cpuFile).Output(); err == nil {
		pr.cpuTop = string(out)
		_ = os.WriteFile(stem+".cpu.top.txt", out, 0o644)
	}
	if out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", "-sample_index=alloc_space", pr.allocFile).Output(); err == nil {
		_ = os.WriteFile(stem+".allocs.top.txt", out, 0o644)
	}
	return pr, nil
}

func fetch(u, path string) error {
	res, err := http.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// memStats reads the runtime.MemStats lines of /debug/pprof/heap?debug=1.
func memStats(pp string) (map[string]uint64, error) {
	res, err := http.Get(pp + "/debug/pprof/heap?debug=1")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "# ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}
