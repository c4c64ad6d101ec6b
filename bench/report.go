package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/store"
)

// summary is the medians of one server's runs of one scenario.
type summary struct {
	runs        int
	rps         float64
	p50, p99    time.Duration
	requests    int
	errors      int
	rssKiB      int64 // the highest peak of the runs
	firstErr    string
	cpuPerReq   time.Duration // server process CPU per request, median
	dbCPUPerReq time.Duration // PostgreSQL backend CPU per request, median
	drain       time.Duration // the longest wait for the dispatcher after a run
}

func summarize(rs []result) summary {
	s := summary{runs: len(rs)}
	var rps []float64
	var p50, p99, cpu, dbCPU []time.Duration
	for _, r := range rs {
		if r.requests > 0 {
			cpu = append(cpu, r.cpu/time.Duration(r.requests))
			dbCPU = append(dbCPU, r.dbCPU/time.Duration(r.requests))
		}
		s.drain = max(s.drain, r.drain)
		rps = append(rps, r.rps())
		p50 = append(p50, r.p50)
		p99 = append(p99, r.p99)
		s.requests += r.requests
		s.errors += r.errors
		s.rssKiB = max(s.rssKiB, r.rssKiB)
		if s.firstErr == "" {
			s.firstErr = r.firstErr
		}
	}
	s.rps = median(rps)
	s.p50, s.p99 = median(p50), median(p99)
	s.cpuPerReq, s.dbCPUPerReq = median(cpu), median(dbCPU)
	return s
}

func median[T float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// rpsOver is s's req/s over o's.
func (s summary) rpsOver(o summary) float64 {
	if o.rps == 0 {
		return 0
	}
	return s.rps / o.rps
}

// p99Over is s's p99 over o's.
func (s summary) p99Over(o summary) float64 {
	if o.p99 == 0 {
		return 0
	}
	return float64(s.p99) / float64(o.p99)
}

// p50Over is s's p50 over o's.
func (s summary) p50Over(o summary) float64 {
	if o.p50 == 0 {
		return 0
	}
	return float64(s.p50) / float64(o.p50)
}

// row is one scenario and concurrency: the service (svc), the variant if
// the run has one, and the baseline (base). In the scale check, base is
// the service on the reference database.
type row struct {
	scenario string
	conc     int
	svc      summary
	variant  summary // runs == 0 without a variant
	base     summary
	note     string
}

func (r row) line() string {
	one := func(name string, s summary) string {
		return fmt.Sprintf("%s %6.0f req/s p50 %7s p99 %7s err %d rss %s cpu %s+db %s", name, s.rps, fmtDur(s.p50), fmtDur(s.p99),
			s.errors, fmtRSS(s.rssKiB), fmtDur(s.cpuPerReq), fmtDur(s.dbCPUPerReq))
	}
	l := fmt.Sprintf("%-13s c=%-3d %s | %s | ratio %.2f p99x %.2f", r.scenario, r.conc, one(svcName, r.svc), one(baseName, r.base),
		r.svc.rpsOver(r.base), r.svc.p99Over(r.base))
	if r.variant.runs > 0 {
		l += fmt.Sprintf(" | %s | ratio %.2f, %.2f of useremail", one(variantName, r.variant), r.variant.rpsOver(r.base), r.variant.rpsOver(r.svc))
	}
	return l
}

// tableRow is one line of the results table: a server against the
// baseline.
type tableRow struct {
	label string // the scenario, and the variant's name on its rows
	conc  int
	s     summary
	base  summary
	vsSvc string // on a variant's row: its req/s over the service's
}

// table is the results table of d: per scenario and concurrency the
// service's row and, when the run has a variant, the variant's.
func (r *report) table(d *dialectReport) []tableRow {
	var out []tableRow
	for _, x := range d.rows {
		out = append(out, tableRow{label: x.scenario, conc: x.conc, s: x.svc, base: x.base})
		if x.variant.runs > 0 {
			out = append(out, tableRow{label: x.scenario + ", " + r.cfg.variant.name, conc: x.conc, s: x.variant, base: x.base,
				vsSvc: fmt.Sprintf("%.2f", x.variant.rpsOver(x.svc))})
		}
	}
	return out
}

type dialectReport struct {
	dialect  store.Dialect
	users    int
	seedTime time.Duration
	dbSize   string
	rows     []row
	scale    []row
	counts   []countRow
	explains []explainRow
	profiles []profileRow
	pprof    bool
}

type report struct {
	cfg      config
	started  time.Time
	finished time.Time
	machine  machine
	hashTime time.Duration
	dialects []*dialectReport
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtRSS(kib int64) string {
	if kib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(kib)/1024)
}

// text is the plain table printed at the end of a run.
func (r *report) text() string {
	var b strings.Builder
	variant := r.cfg.variant.on()
	for _, d := range r.dialects {
		fmt.Fprintf(&b, "\n%s, %d users (seeded in %s)\n", d.dialect, d.users, d.seedTime.Round(time.Millisecond))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
		head := "scenario\tconc\treq/s\tp50\tp99\terrors\tpeak RSS\tbaseline req/s\tp50\tp99\terrors\tpeak RSS\treq/s ratio\tp99 ratio\t"
		if variant {
			head += "vs useremail\t"
		}
		fmt.Fprintln(tw, head)
		for _, x := range r.table(d) {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%.0f\t%s\t%s\t%d\t%s\t%.2f\t%.2f\t", x.label, x.conc,
				x.s.rps, fmtDur(x.s.p50), fmtDur(x.s.p99), x.s.errors, fmtRSS(x.s.rssKiB),
				x.base.rps, fmtDur(x.base.p50), fmtDur(x.base.p99), x.base.errors, fmtRSS(x.base.rssKiB), x.s.rpsOver(x.base), x.s.p99Over(x.base))
			if variant {
				fmt.Fprintf(tw, "%s\t", x.vsSvc)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		for _, x := range r.table(d) {
			if x.s.firstErr != "" || x.base.firstErr != "" {
				fmt.Fprintf(&b, "  %s c=%d first error: %q baseline %q\n", x.label, x.conc, x.s.firstErr, x.base.firstErr)
			}
		}
		for _, x := range d.scale {
			fmt.Fprintf(&b, "  scale %s c=%d: p50 %s at %d users, %s at %d users: %.2f×\n", x.scenario, x.conc,
				fmtDur(x.svc.p50), d.users, fmtDur(x.base.p50), r.cfg.refUsers, x.svc.p50Over(x.base))
		}
		for _, t := range r.targets(d) {
			fmt.Fprintf(&b, "  target %-62s %-44s %s\n", t.name, t.figure, t.verdict())
		}
	}
	return b.String()
}

// goal is one target of the issue, judged on one dialect's figures.
type goal struct {
	name   string
	figure string
	met    bool
}

func (g goal) verdict() string {
	if g.met {
		return "met"
	}
	return "MISSED"
}

// minRatio is the least req/s ratio to the baseline each scenario must
// reach (issue 12, item 6).
var minRatio = map[store.Dialect]map[string]float64{
	store.Postgres: {"list emails": 0.90, "primary email": 0.90, "add email": 0.75, "verify link": 0.85, "login": 0.95},
	store.SQLite:   {"list emails": 0.90, "primary email": 0.90, "add email": 0.60, "verify link": 0.80, "login": 0.95},
}

const (
	maxP99Ratio   = 1.5       // the service's p99 over the baseline's, PostgreSQL, every scenario but login
	maxRSSKiB     = 48 * 1024 // the service's peak RSS in every scenario but login
	loginRSSKiB   = 40 * 1024 // under login: this plus the hashing slots' memory
	mechanismGain = 1.10      // what a mechanism must pay on one of the targets' figures to stay
)

// loginRSSLimit is the service's peak RSS target under login: 40 MiB and
// the working memory of its hashing slots (one per two CPUs, at least one)
// at the default argon2id memory.
func loginRSSLimit() int64 {
	return loginRSSKiB + int64(max(1, runtime.GOMAXPROCS(0)/2))*int64(password.DefaultParams.Memory)
}

// targets judges the targets on every row (each scenario at each
// concurrency), the peak RSS outside and under login, the scale check,
// and, with a variant, whether the service beats it by mechanismGain.
func (r *report) targets(d *dialectReport) []goal {
	var out []goal
	for _, x := range d.rows {
		if least, ok := minRatio[d.dialect][x.scenario]; ok {
			out = append(out, goal{name: fmt.Sprintf("%s c=%d: req/s ≥ %.2f× baseline", x.scenario, x.conc, least),
				figure: fmt.Sprintf("%.2f× (%.0f vs %.0f)", x.svc.rpsOver(x.base), x.svc.rps, x.base.rps), met: x.svc.rpsOver(x.base) >= least})
		}
		if d.dialect == store.Postgres && x.scenario != "login" {
			out = append(out, goal{name: fmt.Sprintf("%s c=%d: p99 ≤ %.1f× baseline", x.scenario, x.conc, maxP99Ratio),
				figure: fmt.Sprintf("%.2f× (%s vs %s)", x.svc.p99Over(x.base), fmtDur(x.svc.p99), fmtDur(x.base.p99)), met: x.svc.p99Over(x.base) <= maxP99Ratio})
		}
	}
	for _, login := range []bool{false, true} {
		peak, base, where := peakRSS(d, login, func(x row) summary { return x.svc })
		if peak == 0 {
			continue
		}
		name, limit := fmt.Sprintf("server peak RSS ≤ %s outside login", fmtRSS(maxRSSKiB)), int64(maxRSSKiB)
		if login {
			limit = loginRSSLimit()
			name = fmt.Sprintf("server peak RSS ≤ %s under login (40 MiB + %d slots × %d MiB)", fmtRSS(limit),
				max(1, runtime.GOMAXPROCS(0)/2), password.DefaultParams.Memory/1024)
		}
		out = append(out, goal{name: name, figure: fmt.Sprintf("%s (%s; baseline %s)", fmtRSS(peak), where, fmtRSS(base)), met: peak <= limit})
	}
	for _, x := range d.scale {
		out = append(out, goal{name: fmt.Sprintf("%s c=%d: p50 at %d users ≤ 1.3× at %d", x.scenario, x.conc, d.users, r.cfg.refUsers),
			figure: fmt.Sprintf("%.2f× (%s vs %s)", x.svc.p50Over(x.base), fmtDur(x.svc.p50), fmtDur(x.base.p50)), met: x.svc.p50Over(x.base) <= 1.3})
	}
	if g, ok := r.mechanism(d); ok {
		out = append(out, g)
	}
	return out
}

// peakRSS is the highest peak RSS of the server pick chooses over the rows
// of login or of every other scenario, the baseline's, and where it was.
func peakRSS(d *dialectReport, login bool, pick func(row) summary) (peak, base int64, where string) {
	for _, x := range d.rows {
		if (x.scenario == "login") != login {
			continue
		}
		base = max(base, x.base.rssKiB)
		if s := pick(x); s.rssKiB > peak {
			peak, where = s.rssKiB, fmt.Sprintf("%s c=%d", x.scenario, x.conc)
		}
	}
	return peak, base, where
}

// mechanism judges a variant without a mechanism: the mechanism stays only
// if the service beats the variant by mechanismGain on a figure a target
// is about (req/s of any scenario, p99 on PostgreSQL, peak RSS). The figure
// names the best such gain and the req/s gains of every row.
func (r *report) mechanism(d *dialectReport) (goal, bool) {
	if !r.cfg.variant.on() {
		return goal{}, false
	}
	best, where := 0.0, ""
	consider := func(gain float64, what string) {
		if gain > best {
			best, where = gain, what
		}
	}
	var each []string
	for _, x := range d.rows {
		if x.variant.runs == 0 {
			continue
		}
		g := x.svc.rpsOver(x.variant)
		each = append(each, fmt.Sprintf("%s c=%d %.2f", strings.Fields(x.scenario)[0], x.conc, g))
		consider(g, fmt.Sprintf("%s c=%d req/s", x.scenario, x.conc))
		if d.dialect == store.Postgres && x.scenario != "login" {
			consider(x.variant.p99Over(x.svc), fmt.Sprintf("%s c=%d p99", x.scenario, x.conc))
		}
	}
	for _, login := range []bool{false, true} {
		svc, _, _ := peakRSS(d, login, func(x row) summary { return x.svc })
		v, _, where := peakRSS(d, login, func(x row) summary { return x.variant })
		if svc > 0 {
			consider(float64(v)/float64(svc), "peak RSS at "+where)
		}
	}
	if where == "" {
		return goal{}, false
	}
	return goal{
		name:   fmt.Sprintf("useremail ≥ %.2f× %q on a target's figure (the mechanism pays)", mechanismGain, r.cfg.variant.name),
		figure: fmt.Sprintf("best %.2f× (%s); req/s: %s", best, where, strings.Join(each, ", ")),
		met:    best >= mechanismGain,
	}, true
}

// markdown is the generated section of docs/PERFORMANCE.md for this run.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.machine
	cfg := r.cfg
	fmt.Fprintf(&b, "### %d users — %s\n\n", cfg.users, r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %d CPUs (`nproc`), %s; %s; %s; %s. Checkout: `%s`.  \n", m.NProc, m.CPU, m.Go, orDash(firstField(m.Postgres, ",")), m.Kernel, orDash(m.Revision))
	order := "A B B A"
	if cfg.variant.on() {
		order = "A B C C B A"
	}
	fmt.Fprintf(&b, "Run: %s per measured run after %s of warm-up, concurrency %s, %d runs of each server per row (alternating %s, each server started for its run), "+
		"medians shown; %d sessions; argon2id at the default cost (one hash took %s here). Took %s.\n",
		cfg.duration, cfg.warmup, joinInts(cfg.concurrency), cfg.reps, order, cfg.sessions, r.hashTime.Round(time.Millisecond), r.finished.Sub(r.started).Round(time.Second))
	if len(cfg.serverEnv) > 0 {
		fmt.Fprintf(&b, "Experiment: the service ran with `%s` added to its environment.\n", strings.Join(cfg.serverEnv, " "))
	}
	if cfg.variant.on() {
		fmt.Fprintf(&b, "Variant %q: %s; its rows compare it with the baseline, and \"vs useremail\" is its req/s over the service's.\n", cfg.variant.name, cfg.variant.describe())
	}
	if u, err := url.Parse(cfg.pgURL); err == nil && cfg.postgres && len(u.Query()) > 1 {
		fmt.Fprintf(&b, "PostgreSQL URL parameters of every server: `%s`.\n", u.RawQuery)
	}
	b.WriteString("\n")
	for _, d := range r.dialects {
		fmt.Fprintf(&b, "#### %s\n\n", dialectTitle(d.dialect))
		fmt.Fprintf(&b, "Seeded %d users (%d with a second, unverified address) and %d sessions in %s", d.users, d.users/2, min(cfg.sessions, d.users), d.seedTime.Round(time.Millisecond))
		if d.dbSize != "" {
			fmt.Fprintf(&b, "; database %s after seeding", d.dbSize)
		}
		b.WriteString(".\n\n")
		head, rule := "| scenario | conc | useremail req/s | p50 | p99 | errors | peak RSS | baseline req/s | p50 | p99 | errors | peak RSS | req/s ratio | p99 ratio |",
			"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		if cfg.variant.on() {
			head = strings.Replace(head, "useremail req/s", "req/s", 1) + " vs useremail |"
			rule += " ---: |"
		}
		b.WriteString(head + "\n" + rule + "\n")
		for _, x := range r.table(d) {
			fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %d | %s | %.0f | %s | %s | %d | %s | **%.2f** | %.2f |", x.label, x.conc,
				x.s.rps, fmtDur(x.s.p50), fmtDur(x.s.p99), x.s.errors, fmtRSS(x.s.rssKiB),
				x.base.rps, fmtDur(x.base.p50), fmtDur(x.base.p99), x.base.errors, fmtRSS(x.base.rssKiB), x.s.rpsOver(x.base), x.s.p99Over(x.base))
			if cfg.variant.on() {
				fmt.Fprintf(&b, " %s |", x.vsSvc)
			}
			b.WriteString("\n")
		}
		b.WriteString("\nCPU time per request, medians (server process from /proc/PID/stat; PostgreSQL: the backends connected to the run's database):\n\n")
		b.WriteString("| scenario | conc | useremail CPU/req | its PostgreSQL CPU/req | baseline CPU/req | its PostgreSQL CPU/req | longest mail drain after its run |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, x := range r.table(d) {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", x.label, x.conc, fmtDur(x.s.cpuPerReq), fmtDur(x.s.dbCPUPerReq),
				fmtDur(x.base.cpuPerReq), fmtDur(x.base.dbCPUPerReq), fmtDur(x.s.drain))
		}
		b.WriteString("\n")
		for _, x := range d.rows {
			if x.note != "" {
				fmt.Fprintf(&b, "- %s c=%d: %s.\n", x.scenario, x.conc, x.note)
			}
		}
		for _, x := range r.table(d) {
			if x.s.firstErr != "" || x.base.firstErr != "" {
				fmt.Fprintf(&b, "- %s c=%d, first error: `%s`, baseline `%s`.\n", x.label, x.conc, trim(x.s.firstErr, 160), trim(x.base.firstErr, 160))
			}
		}
		if len(d.scale) > 0 {
			fmt.Fprintf(&b, "\nScale check: the service on this database and a second service on a fresh database of %d users, alternating:\n\n", cfg.refUsers)
			b.WriteString("| read | conc | p50 here | p50 reference | ratio | req/s here | req/s reference |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
			for _, x := range d.scale {
				fmt.Fprintf(&b, "| %s | %d | %s | %s | **%.2f** | %.0f | %.0f |\n", x.scenario, x.conc, fmtDur(x.svc.p50), fmtDur(x.base.p50), x.svc.p50Over(x.base), x.svc.rps, x.base.rps)
			}
		}
		if goals := r.targets(d); len(goals) > 0 {
			b.WriteString("\n| target | figure | |\n| --- | --- | --- |\n")
			for _, g := range goals {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", g.name, g.figure, g.verdict())
			}
		}
		if len(d.counts) > 0 {
			fmt.Fprintf(&b, "\nStatements per request, counted by a PostgreSQL wire-protocol proxy over %d sequential requests per scenario "+
				"(for useremail, including the mail its dispatcher delivers for those requests; BEGIN and COMMIT count):\n\n", cfg.count)
			b.WriteString("| scenario | useremail statements | round trips | baseline statements | round trips |\n| --- | ---: | ---: | ---: | ---: |\n")
			for i := 0; i+1 < len(d.counts); i += 2 {
				s, x := d.counts[i], d.counts[i+1]
				fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %.1f |\n", s.scenario, s.perRequest(s.total()), s.perRequest(s.roundTrips), x.perRequest(x.total()), x.perRequest(x.roundTrips))
			}
			for _, c := range d.counts {
				fmt.Fprintf(&b, "\n<details><summary>%s, %s: statements per request</summary>\n\n```\n", c.scenario, c.target)
				for _, s := range c.stmts {
					fmt.Fprintf(&b, "%6.2f  %s\n", c.perRequest(s.Count), trim(s.SQL, 200))
				}
				if c.firstErr != "" {
					fmt.Fprintf(&b, "first error: %s\n", trim(c.firstErr, 200))
				}
				b.WriteString("```\n</details>\n")
			}
		}
		if len(d.explains) > 0 {
			seq := 0
			for _, x := range d.explains {
				if x.seqScan {
					seq++
				}
			}
			fmt.Fprintf(&b, "\n`EXPLAIN` of every SELECT, UPDATE and DELETE the service sent in those requests, with the parameters it sent, on this database "+
				"(%d of %d plans have a sequential scan):\n", seq, len(d.explains))
			for _, x := range d.explains {
				fmt.Fprintf(&b, "\n%s:\n```sql\n%s\n```\n```\n%s%s\n```\n", strings.Join(x.scenarios, ", "), x.sql, x.plan, x.err)
			}
		}
		if cfg.profileDir != "" {
			if !d.pprof {
				b.WriteString("\nThe service serves no pprof endpoint: only the baseline was profiled.\n")
			}
			if len(d.profiles) > 0 {
				fmt.Fprintf(&b, "\nAllocations per request (runtime.MemStats over one profiled run at concurrency %d; profiles in `%s`):\n\n", cfg.concurrency[len(cfg.concurrency)-1], cfg.profileDir)
				b.WriteString("| scenario | server | requests | allocs/req | KiB/req |\n| --- | --- | ---: | ---: | ---: |\n")
				for _, p := range d.profiles {
					fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %.1f |\n", p.scenario, p.target, p.requests, p.allocsPerReq, p.bytesPerReq/1024)
				}
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func dialectTitle(d store.Dialect) string {
	if d == store.Postgres {
		return "PostgreSQL"
	}
	return "SQLite"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstField(s, sep string) string {
	f, _, _ := strings.Cut(s, sep)
	return f
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " and ")
}

func trim(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// The generated part of docs/PERFORMANCE.md sits between two markers per
// section, so that a run replaces its own figures and keeps the rest of
// the document (the analysis written by hand, other sections).
func markers(section string) (string, string) {
	return "<!-- bench:" + section + ":begin (generated by go run ./bench; do not edit) -->",
		"<!-- bench:" + section + ":end -->"
}

const docSkeleton = `# Performance

How fast useremail is, measured the way its users meet it (HTTP against the
real binary), against the bare stack it is built on (Echo and sqlx doing the
same work per request: ` + "`bench/baseline`" + `), in the same run. The
harness is ` + "`bench/`" + `: ` + "`make bench`" + ` rewrites the generated
sections below.

## Results

<!-- bench:users-10000:begin (generated by go run ./bench; do not edit) -->
<!-- bench:users-10000:end -->

<!-- bench:users-1000000:begin (generated by go run ./bench; do not edit) -->
<!-- bench:users-1000000:end -->
`

// writeMarkdown puts the run's section into the file at path.
func (r *report) writeMarkdown(path, section string) error {
	if section == "" {
		section = fmt.Sprintf("users-%d", r.cfg.users)
	}
	doc := docSkeleton
	if b, err := os.ReadFile(path); err == nil {
		doc = string(b)
	} else if !os.IsNotExist(err) {
		return err
	}
	begin, end := markers(section)
	body := begin + "\n" + r.markdown() + end
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i >= 0 && j > i {
		doc = doc[:i] + body + doc[j+len(end):]
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + body + "\n"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
