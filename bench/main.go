// Command bench measures useremail the way its users meet it, over HTTP
// against the real binary on PostgreSQL and on SQLite, and in the same run
// the bare stack it is built on (bench/baseline: Echo and sqlx doing the
// same work per request) and, when asked, a variant of the service (built
// from another revision, or the same binary with other settings). Figures
// on a shared machine are noisy, so every figure that matters is a ratio
// measured in the same run, the servers alternating (A B C C B A …), and
// the medians are reported.
//
//	go run ./bench                     # 10,000 users, 10 s per run, PostgreSQL and SQLite; rewrites docs/PERFORMANCE.md
//	go run ./bench -users 1000000 -sqlite=false
//	go run ./bench -variant-db-params prepared_statements=off -variant-name 'no prepared statements' -out -
//	go run ./bench -variant-rev no-route-fast-path -only list,primary -out -
//
// See docs/PERFORMANCE.md for the method, the figures and the targets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/signer"
	"github.com/useremail/useremail/store"
)

// config is one run of the harness.
type config struct {
	users       int           // seeded users
	refUsers    int           // the reference size of the scale check (PostgreSQL, when users > refUsers)
	sessions    int           // seeded sessions, for users spread over the ids
	duration    time.Duration // measured time of one run
	warmup      time.Duration // load before each measured run, not counted
	concurrency []int
	reps        int // runs of each server per scenario and concurrency
	pgURL       string
	postgres    bool
	sqlite      bool
	out         string   // Markdown file to write the results into ("" for none)
	section     string   // which generated section of out to replace
	serverBin   string   // a prebuilt useremail binary instead of building one
	serverEnv   []string // extra environment of the service (experiments: GOMEMLIMIT=…, GOGC=…)
	profileDir  string   // collect pprof profiles here, when the servers serve pprof
	count       int      // requests of the statement-counting pass (PostgreSQL); 0 skips it
	only        map[string]bool
	log         io.Writer
	variant     variantConfig // a second service, measured in the same alternation
}

// variantConfig is the second service of a run, measured in the same
// alternation as the service and the baseline: another binary, or the
// service's with other settings.
type variantConfig struct {
	name     string   // its label in the report
	rev      string   // build ./cmd/useremail at this git revision
	bin      string   // or use this binary
	env      []string // added to the service's environment
	dbParams string   // added to the query of its database URL (prepared_statements=off)
}

// on reports whether the run has a variant.
func (v variantConfig) on() bool {
	return v.rev != "" || v.bin != "" || len(v.env) > 0 || v.dbParams != ""
}

// describe says what the variant is, for the report.
func (v variantConfig) describe() string {
	var parts []string
	switch {
	case v.rev != "":
		parts = append(parts, fmt.Sprintf("useremail built at `%s`", v.rev))
	case v.bin != "":
		parts = append(parts, fmt.Sprintf("the binary `%s`", v.bin))
	default:
		parts = append(parts, "the service's binary")
	}
	if len(v.env) > 0 {
		parts = append(parts, fmt.Sprintf("with `%s` in its environment", strings.Join(v.env, " ")))
	}
	if v.dbParams != "" {
		parts = append(parts, fmt.Sprintf("with `%s` added to its database URL", v.dbParams))
	}
	return strings.Join(parts, ", ")
}

func main() {
	log.SetFlags(0)
	var cfg config
	var conc, only, serverEnv, variantEnv string
	flag.IntVar(&cfg.users, "users", 10000, "users to seed")
	flag.IntVar(&cfg.refUsers, "ref-users", 10000, "reference size of the read scale check, run on PostgreSQL when -users is larger")
	flag.IntVar(&cfg.sessions, "sessions", 1000, "sessions to seed (one per user, users spread over the ids)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each run")
	flag.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "warm-up before each measured run")
	flag.StringVar(&conc, "concurrency", "16,64", "comma-separated client concurrencies")
	flag.IntVar(&cfg.reps, "reps", 2, "runs of each server per scenario and concurrency, alternating (A B B A …)")
	flag.StringVar(&cfg.pgURL, "pg", envOr("USEREMAIL_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		"PostgreSQL URL; the harness creates and drops a database of its own beside it (env USEREMAIL_BENCH_DATABASE_URL)")
	flag.BoolVar(&cfg.postgres, "postgres", true, "measure on PostgreSQL")
	flag.BoolVar(&cfg.sqlite, "sqlite", true, "measure on SQLite")
	flag.StringVar(&cfg.out, "out", "", "Markdown file to write the results into (default docs/PERFORMANCE.md of the module)")
	flag.StringVar(&cfg.section, "section", "", "the generated section of -out to replace (default: derived from -users)")
	flag.StringVar(&cfg.serverBin, "server-bin", "", "use this useremail binary instead of building ./cmd/useremail")
	flag.StringVar(&serverEnv, "server-env", "", "comma-separated NAME=VALUE pairs added to the service's environment, for experiments (GOMEMLIMIT=48MiB)")
	flag.StringVar(&cfg.variant.name, "variant-name", "variant", "label of the variant in the report")
	flag.StringVar(&cfg.variant.rev, "variant-rev", "", "measure a variant: useremail built at this git revision (a branch without a mechanism)")
	flag.StringVar(&cfg.variant.bin, "variant-bin", "", "measure a variant: this useremail binary")
	flag.StringVar(&variantEnv, "variant-env", "", "measure a variant: the service with these comma-separated NAME=VALUE pairs added to its environment")
	flag.StringVar(&cfg.variant.dbParams, "variant-db-params", "", "measure a variant: the service with these URL parameters added to its database URL (prepared_statements=off)")
	flag.StringVar(&cfg.profileDir, "profile-dir", "", "collect CPU and allocation profiles into this directory (the service serves them on USEREMAIL_DEBUG_ADDR, the baseline on USEREMAIL_BENCH_PPROF)")
	flag.IntVar(&cfg.count, "count", 200, "requests per scenario of the statement-counting pass on PostgreSQL (0 skips it)")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (list, primary, login, add, verify); default all")
	flag.Parse()
	var err error
	if cfg.concurrency, err = parseInts(conc); err != nil {
		log.Fatalf("bench: -concurrency: %v", err)
	}
	if cfg.serverEnv, err = parseEnv(serverEnv); err != nil {
		log.Fatalf("bench: -server-env: %v", err)
	}
	if cfg.variant.env, err = parseEnv(variantEnv); err != nil {
		log.Fatalf("bench: -variant-env: %v", err)
	}
	if cfg.variant.rev != "" && cfg.variant.bin != "" {
		log.Fatal("bench: -variant-rev and -variant-bin: one or the other")
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.only[s] = true
		}
	}
	cfg.log = os.Stderr
	if cfg.out == "" {
		root, err := moduleRoot()
		if err != nil {
			log.Fatal("bench: ", err)
		}
		cfg.out = filepath.Join(root, "docs", "PERFORMANCE.md")
	}
	if cfg.out == "-" {
		cfg.out = ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if rep != nil {
		fmt.Print(rep.text())
		if cfg.out != "" {
			if werr := rep.writeMarkdown(cfg.out, cfg.section); werr != nil {
				log.Print("bench: ", werr)
			} else {
				fmt.Fprintln(os.Stderr, "wrote", cfg.out)
			}
		}
	}
	if err != nil {
		log.Fatal("bench: ", err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parseEnv reads comma-separated NAME=VALUE pairs.
func parseEnv(s string) ([]string, error) {
	var out []string
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				return nil, fmt.Errorf("%q is not NAME=VALUE", kv)
			}
			out = append(out, kv)
		}
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive whole numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (cfg config) logf(format string, args ...any) {
	if cfg.log != nil {
		fmt.Fprintf(cfg.log, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

func (cfg config) want(scenario string) bool {
	if len(cfg.only) == 0 {
		return true
	}
	return cfg.only[strings.Fields(scenario)[0]]
}

// env is what a run shares across dialects.
type env struct {
	cfg     config
	tmp     string
	smtpURL string // the sink the services send their mail to
	secret  string
	hash    string
	signer  *signer.Signer
	targets []target // the servers measured, in the order of the alternation
}

// target is one server the harness measures: the service, its variant or
// the baseline. The harness starts it for each run and stops it after, so
// that only the measured server runs: no other service's dispatcher takes
// a share of its mail, and no idle server holds the SQLite file.
type target struct {
	name     string // "useremail", "variant" or "baseline"
	bin      string
	args     []string
	ready    string // the path that answers 200 once it serves
	env      func(dbURL, addr string) []string
	dbParams string // added to the query of its database URL
	service  bool   // a useremail: after a run, the harness waits for its mail
}

// Names of the targets.
const (
	svcName     = "useremail"
	variantName = "variant"
	baseName    = "baseline"
)

// target returns the target of that name, or nil.
func (e *env) target(name string) *target {
	for i := range e.targets {
		if e.targets[i].name == name {
			return &e.targets[i]
		}
	}
	return nil
}

// run builds the servers, then measures each dialect in turn.
func run(ctx context.Context, cfg config) (*report, error) {
	if cfg.reps < 1 || cfg.users < 1 || cfg.sessions < 1 || len(cfg.concurrency) == 0 {
		return nil, errors.New("need -reps, -users, -sessions and -concurrency of at least 1")
	}
	rep := &report{cfg: cfg, started: time.Now(), machine: describeMachine(ctx)}
	tmp, err := os.MkdirTemp("", "useremail-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	e := &env{cfg: cfg, tmp: tmp}
	if err := e.build(ctx); err != nil {
		return nil, err
	}
	sink, err := startSMTPSink()
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	e.smtpURL = sink.URL()
	// A 48-character secret, as `openssl rand -base64 48` would give (cut).
	e.secret = (randomToken() + randomToken())[:48]
	if e.signer, err = signer.New([][]byte{[]byte(e.secret)}, nil); err != nil {
		return nil, err
	}
	// One real argon2id hash with the service's default (OWASP) parameters,
	// shared by every seeded user: each login still verifies it in full.
	t0 := time.Now()
	if e.hash, err = password.NewHasher(password.DefaultParams, 1).Hash(ctx, benchPassword); err != nil {
		return nil, err
	}
	rep.hashTime = time.Since(t0)

	for _, dialect := range []store.Dialect{store.Postgres, store.SQLite} {
		if (dialect == store.Postgres && !cfg.postgres) || (dialect == store.SQLite && !cfg.sqlite) {
			continue
		}
		d, err := e.measure(ctx, dialect, rep)
		if d != nil {
			rep.dialects = append(rep.dialects, d)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", dialect, err)
		}
	}
	rep.finished = time.Now()
	return rep, nil
}

// build compiles the servers (the service, the variant if it has a binary
// of its own, the baseline) and sets e.targets.
func (e *env) build(ctx context.Context) error {
	cfg := e.cfg
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cfg.logf("building the servers")
	serverBin := cfg.serverBin
	if serverBin == "" {
		if serverBin, err = build(ctx, root, "./cmd/useremail", e.tmp, "useremail"); err != nil {
			return err
		}
	}
	baselineBin, err := build(ctx, root, "./bench/baseline", e.tmp, "baseline")
	if err != nil {
		return err
	}
	e.targets = []target{{name: svcName, bin: serverBin, args: []string{"serve"}, ready: "/readyz", env: e.serviceEnv, service: true}}
	if v := cfg.variant; v.on() {
		bin := v.bin
		switch {
		case v.rev != "":
			if bin, err = buildRevision(ctx, root, v.rev, e.tmp); err != nil {
				return err
			}
		case bin == "":
			bin = serverBin
		}
		venv := func(dbURL, addr string) []string { return append(e.serviceEnv(dbURL, addr), v.env...) }
		e.targets = append(e.targets, target{name: variantName, bin: bin, args: []string{"serve"}, ready: "/readyz", env: venv, dbParams: v.dbParams, service: true})
	}
	e.targets = append(e.targets, target{name: baseName, bin: baselineBin, ready: "/healthz", env: e.baselineEnv})
	return nil
}

// newDatabase creates, migrates (with the server's own migrate command),
// opens and seeds a database of users users.
func (e *env) newDatabase(ctx context.Context, dialect store.Dialect, name string, users int) (*database, *seeded, time.Duration, error) {
	var db *database
	var err error
	if dialect == store.Postgres {
		if db, err = createPostgres(ctx, e.cfg.pgURL, name); err != nil {
			return nil, nil, 0, err
		}
	} else {
		db = createSQLite(e.tmp, name)
	}
	fail := func(err error) (*database, *seeded, time.Duration, error) {
		if db.store != nil {
			db.store.Close()
		}
		_ = db.drop()
		return nil, nil, 0, err
	}
	cmd := exec.CommandContext(ctx, e.target(svcName).bin, "migrate")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "USEREMAIL_DATABASE_URL=" + db.url, "USEREMAIL_SECRET_KEYS=" + e.secret}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("useremail migrate: %w\n%s", err, out))
	}
	if db.store, err = store.Open(ctx, db.url); err != nil {
		return fail(err)
	}
	t0 := time.Now()
	sd, err := seed(ctx, db.store, users, e.cfg.sessions, e.hash, func(done int) {
		if users >= 100000 {
			e.cfg.logf("  seeded %d/%d users (%s)", done, users, time.Since(t0).Round(time.Second))
		}
	})
	if err != nil {
		return fail(err)
	}
	if err := analyze(ctx, db.store); err != nil {
		return fail(err)
	}
	return db, sd, time.Since(t0), nil
}

// serviceEnv is the service's configuration in a run.
func (e *env) serviceEnv(dbURL, addr string) []string {
	env := []string{
		"USEREMAIL_ADDR=" + addr,
		"USEREMAIL_DATABASE_URL=" + dbURL,
		"USEREMAIL_SECRET_KEYS=" + e.secret,
		"USEREMAIL_SMTP_URL=" + e.smtpURL,
		"USEREMAIL_RATE_LIMITS=off",
		"USEREMAIL_RESEND_INTERVAL=0",
		// The add-email runs add far more than the default ten addresses per
		// user (the limit is checked all the same).
		"USEREMAIL_MAX_EMAILS=1000",
		"USEREMAIL_COOKIE_SECURE=false",
		// USEREMAIL_ARGON2 unset: the default (OWASP) cost, as in production.
	}
	if e.cfg.profileDir != "" {
		env = append(env, "USEREMAIL_DEBUG_ADDR="+pprofAddr(addr))
	}
	return append(env, e.cfg.serverEnv...)
}

func (e *env) baselineEnv(dbURL, addr string) []string {
	env := []string{"BASELINE_ADDR=" + addr, "BASELINE_DATABASE_URL=" + dbURL, "BASELINE_SECRET=" + e.secret}
	if e.cfg.profileDir != "" {
		env = append(env, "USEREMAIL_BENCH_PPROF="+pprofAddr(addr))
	}
	return env
}

// pprofAddr is where a server at addr serves pprof: the next port.
func pprofAddr(addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	n, _ := strconv.Atoi(port)
	return host + ":" + strconv.Itoa(n+1)
}

// start starts t on db and waits until it serves.
func (e *env) start(ctx context.Context, t *target, db *database) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	name := t.name + "-" + db.name
	return start(ctx, name, t.bin, t.args, t.env(withParams(db.url, t.dbParams), addr), addr, t.ready, filepath.Join(e.tmp, name+".log"))
}

// withParams adds URL query parameters (name=value&…) to a database URL.
func withParams(dbURL, params string) string {
	switch {
	case params == "":
		return dbURL
	case strings.Contains(dbURL, "?"):
		return dbURL + "&" + params
	}
	return dbURL + "?" + params
}

// measure runs every scenario on one dialect.
func (e *env) measure(ctx context.Context, dialect store.Dialect, rep *report) (*dialectReport, error) {
	cfg := e.cfg
	d := &dialectReport{dialect: dialect, users: cfg.users}
	name := fmt.Sprintf("useremail_bench_%d_%s", os.Getpid(), dialect)
	cfg.logf("%s: seeding %d users", dialect, cfg.users)
	db, sd, seedTime, err := e.newDatabase(ctx, dialect, name, cfg.users)
	if err != nil {
		return nil, err
	}
	d.seedTime = seedTime
	defer func() {
		db.store.Close()
		if err := db.drop(); err != nil {
			cfg.logf("%s: drop: %v", dialect, err)
		}
	}()
	cfg.logf("%s: seeded in %s", dialect, seedTime.Round(time.Millisecond))
	if dialect == store.Postgres {
		_ = db.store.SQL().GetContext(ctx, &rep.machine.Postgres, `SELECT version()`)
		_ = db.store.SQL().GetContext(ctx, &d.dbSize, `SELECT pg_size_pretty(pg_database_size(current_database()))`)
	}

	w := &workload{seed: sd, signer: e.signer, nonce: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	w.pending = append(w.pending, sd.unverified...)
	scenarios := w.scenarios()

	if dialect == store.Postgres && cfg.users > cfg.refUsers && cfg.refUsers > 0 {
		if d.scale, err = e.scaleCheck(ctx, db, w, scenarios[:2]); err != nil {
			return d, err
		}
	}

	for _, sc := range scenarios {
		if !cfg.want(sc.name) {
			continue
		}
		if sc.name == "verify link" {
			if err := w.prepareLinks(0); err != nil {
				return d, err
			}
		}
		for _, conc := range cfg.concurrency {
			row, err := e.compare(ctx, db, w, sc, conc)
			if err != nil {
				return d, err
			}
			if sc.name == "verify link" {
				row.note = fmt.Sprintf("%d links for as many unverified addresses, all unverified again before each run; "+
					"%d requests reused a link of their run (an idempotent repeat)", len(w.links), w.repeats.Load())
			}
			d.rows = append(d.rows, row)
			cfg.logf("%s", row.line())
		}
	}

	if cfg.profileDir != "" {
		if err := e.profile(ctx, d, db, w, scenarios); err != nil {
			return d, err
		}
	}
	if dialect == store.Postgres && cfg.count > 0 {
		if err := e.countStatements(ctx, d, db, w, scenarios); err != nil {
			return d, err
		}
	}
	return d, nil
}

// compare runs every target on one scenario and concurrency, reps times
// each, alternating (A B C C B A …), and keeps the medians.
func (e *env) compare(ctx context.Context, db *database, w *workload, sc *scenario, conc int) (row, error) {
	r := row{scenario: sc.name, conc: conc}
	results := map[string][]result{}
	for i := range e.cfg.reps {
		order := slices.Clone(e.targets)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			res, err := e.once(ctx, db, w, sc, conc, &t)
			if err != nil {
				return r, err
			}
			results[t.name] = append(results[t.name], res)
		}
	}
	r.svc, r.variant, r.base = summarize(results[svcName]), summarize(results[variantName]), summarize(results[baseName])
	return r, nil
}

// once starts t, warms it up, measures one run and stops it. After a run
// of a service it waits until its dispatcher has delivered the mail the
// run queued; after one of the baseline it deletes the baseline's outbox
// rows. The next run, of any server, starts from quiet.
func (e *env) once(ctx context.Context, db *database, w *workload, sc *scenario, conc int, t *target) (result, error) {
	if err := w.resetLinks(ctx, db.store, sc); err != nil {
		return result{}, err
	}
	p, err := e.start(ctx, t, db)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	if e.cfg.warmup > 0 {
		drive(ctx, p.base, sc, conc, e.cfg.warmup)
	}
	resetPeakRSS(p.pid())
	cpu0, db0 := procCPU(p.pid()), readCPUSet(backendPIDs(ctx, db.store))
	res := drive(ctx, p.base, sc, conc, e.cfg.duration)
	res.rssKiB = readPeakRSS(p.pid())
	res.cpu = procCPU(p.pid()) - cpu0
	res.dbCPU = readCPUSet(backendPIDs(ctx, db.store)).since(db0)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if t.service {
		res.drain, err = drain(ctx, db.store)
	} else {
		err = clearBaselineMail(ctx, db.store)
	}
	return res, err
}

// drain waits until the service's outbox is empty, at most a minute.
func drain(ctx context.Context, st *store.DB) (time.Duration, error) {
	t0 := time.Now()
	for time.Since(t0) < time.Minute {
		n, err := pendingOutbox(ctx, st)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return time.Since(t0), nil
}

// scaleCheck compares the read latency of the service on the seeded
// database with that of a second service on a database of refUsers users,
// alternating the two.
func (e *env) scaleCheck(ctx context.Context, large *database, w *workload, reads []*scenario) ([]row, error) {
	cfg := e.cfg
	name := fmt.Sprintf("useremail_bench_%d_ref", os.Getpid())
	cfg.logf("postgres: scale check: seeding the reference database of %d users", cfg.refUsers)
	db, sd, _, err := e.newDatabase(ctx, store.Postgres, name, cfg.refUsers)
	if err != nil {
		return nil, err
	}
	defer func() {
		db.store.Close()
		if err := db.drop(); err != nil {
			cfg.logf("postgres: drop: %v", err)
		}
	}()
	svc := e.target(svcName)
	pl, err := e.start(ctx, svc, large)
	if err != nil {
		return nil, err
	}
	defer pl.stop()
	pr, err := e.start(ctx, svc, db)
	if err != nil {
		return nil, err
	}
	defer pr.stop()
	wRef := &workload{seed: sd, signer: e.signer}
	refReads := wRef.scenarios()[:2]
	var rows []row
	for i, sc := range reads {
		for _, conc := range cfg.concurrency {
			r := row{scenario: sc.name, conc: conc}
			var rl, rr []result
			for k := range cfg.reps {
				runLarge := func() { rl = append(rl, drive2(ctx, cfg, pl, sc, conc)) }
				runRef := func() { rr = append(rr, drive2(ctx, cfg, pr, refReads[i], conc)) }
				if k%2 == 0 {
					runLarge()
					runRef()
				} else {
					runRef()
					runLarge()
				}
			}
			r.svc, r.base = summarize(rl), summarize(rr)
			rows = append(rows, r)
			cfg.logf("scale: %s c=%d p50 %s at %d users vs %s at %d users", sc.name, conc,
				fmtDur(r.svc.p50), cfg.users, fmtDur(r.base.p50), cfg.refUsers)
		}
	}
	return rows, ctx.Err()
}

// drive2 is a warm-up and a measured run with the peak RSS.
func drive2(ctx context.Context, cfg config, p *proc, sc *scenario, conc int) result {
	if cfg.warmup > 0 {
		drive(ctx, p.base, sc, conc, cfg.warmup)
	}
	resetPeakRSS(p.pid())
	res := drive(ctx, p.base, sc, conc, cfg.duration)
	res.rssKiB = readPeakRSS(p.pid())
	return res
}
