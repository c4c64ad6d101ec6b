package main

// The command-line rules of API.md, through the real binary: --help of
// every command prints its usage, exits 0 and touches nothing; a wrong
// command or flag exits 2 and is named in one line; a database without the
// schema says to run useremail migrate; user create takes the password from
// standard input, never from an argument.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// ran is what one run of the binary printed, and its exit code.
type ran struct {
	code           int
	stdout, stderr string
}

// runBinary runs useremail with args in dir, with env as its environment
// (see processEnv) and stdin as its standard input.
func runBinary(t *testing.T, dir string, env map[string]string, stdin string, args ...string) ran {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir = dir
	cmd.Env = processEnv(env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := ran{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("useremail %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func (r ran) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// commands lists every command and subcommand.
var commands = [][]string{
	{}, {"serve"}, {"migrate"}, {"user"}, {"user", "create"}, {"outbox"}, {"outbox", "list"},
	{"outbox", "retry"}, {"outbox", "purge"}, {"audit"}, {"export"}, {"import"}, {"healthcheck"}, {"version"},
	{"admin-token"}, {"admin-token", "create"}, {"admin-token", "list"}, {"admin-token", "revoke"},
}

// filesIn lists the files of dir.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestHelp: --help, -h and help CMD of every command print its usage on
// stdout and exit 0, without configuration, and open no database: no SQLite
// file appears, no PostgreSQL table either.
func TestHelp(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := databaseURL(t, d)
			env := map[string]string{"USEREMAIL_DATABASE_URL": url}
			if d == store.SQLite {
				env = nil // the default, sqlite:useremail.db in the working folder
			}
			dir := t.TempDir()
			for _, cmd := range commands {
				for _, args := range [][]string{slices.Concat(cmd, []string{"--help"}), slices.Concat(cmd, []string{"-h"}), slices.Concat([]string{"help"}, cmd)} {
					t.Run(strings.Join(args, " "), func(t *testing.T) {
						r := runBinary(t, dir, env, "", args...)
						if r.code != 0 || !strings.Contains(r.stdout, "Usage") || r.stderr != "" {
							t.Errorf("want exit 0 and the usage on stdout alone; %v", r)
						}
						if files := filesIn(t, dir); len(files) > 0 {
							t.Errorf("created %v", files)
						}
					})
				}
			}
			if d == store.Postgres {
				var tables int
				if err := openDB(t, url).SQL().Get(&tables, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()`); err != nil {
					t.Fatal(err)
				}
				if tables > 0 {
					t.Errorf("%d tables in the schema after the --help runs, want none", tables)
				}
			}
		})
	}
}

// TestWrongCommandLine: a wrong command, subcommand, flag or argument exits
// 2 with one line on stderr that names it and the --help to run, and does
// nothing else.
func TestWrongCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want string // the whole line
	}{
		{[]string{"frob"}, `useremail: unknown command "frob"; run useremail --help`},
		{[]string{"--frob"}, `useremail: unknown flag --frob; run useremail --help`},
		{[]string{"serve", "--frob"}, `useremail serve: unknown flag --frob; run useremail serve --help`},
		{[]string{"serve", "-frob=1"}, `useremail serve: unknown flag -frob; run useremail serve --help`},
		{[]string{"serve", "extra"}, `useremail serve: unexpected argument "extra"; run useremail serve --help`},
		{[]string{"migrate", "--frob"}, `useremail migrate: unknown flag --frob; run useremail migrate --help`},
		{[]string{"user"}, `useremail user: missing subcommand; run useremail user --help`},
		{[]string{"user", "delete"}, `useremail user: unknown subcommand "delete"; run useremail user --help`},
		{[]string{"user", "create", "--frob"}, `useremail user create: unknown flag --frob; run useremail user create --help`},
		{[]string{"user", "create", "--password-stdin"}, `useremail user create: --email is required; run useremail user create --help`},
		{[]string{"outbox", "--frob"}, `useremail outbox: unknown flag --frob; run useremail outbox --help`},
		{[]string{"outbox", "list", "--status", "lost"}, `useremail outbox list: --status "lost": want queued, sending, sent or failed; run useremail outbox list --help`},
		{[]string{"outbox", "list", "--limit", "many"}, `useremail outbox list: invalid value "many" for flag -limit: parse error; run useremail outbox list --help`},
		{[]string{"outbox", "list", "--status"}, `useremail outbox list: flag needs an argument: -status; run useremail outbox list --help`},
		{[]string{"outbox", "retry"}, `useremail outbox retry: want one message ID; run useremail outbox retry --help`},
		{[]string{"outbox", "retry", "x"}, `useremail outbox retry: "x" is not a message ID; run useremail outbox retry --help`},
		{[]string{"outbox", "purge"}, `useremail outbox purge: --failed is required (sent mail is deleted by useremail serve after USEREMAIL_OUTBOX_RETENTION); run useremail outbox purge --help`},
		{[]string{"outbox", "purge", "--failed", "--older-than", "30d"}, `useremail outbox purge: invalid value "30d" for flag -older-than: parse error; run useremail outbox purge --help`},
		{[]string{"outbox", "purge", "--failed", "--older-than=-1h"}, `useremail outbox purge: --older-than must not be negative; run useremail outbox purge --help`},
		{[]string{"audit"}, `useremail audit: --user ID is required; run useremail audit --help`},
		{[]string{"audit", "--user", "1", "--frob"}, `useremail audit: unknown flag --frob; run useremail audit --help`},
		{[]string{"export", "extra"}, `useremail export: unexpected argument "extra"; run useremail export --help`},
		{[]string{"import"}, `useremail import: want one FILE (or - for standard input); run useremail import --help`},
		{[]string{"import", "--format", "csv", "f.json"}, `useremail import: --format "csv": want useremail or django; run useremail import --help`},
		{[]string{"import", "--frob", "f.json"}, `useremail import: unknown flag --frob; run useremail import --help`},
		{[]string{"admin-token"}, `useremail admin-token: missing subcommand; run useremail admin-token --help`},
		{[]string{"admin-token", "rotate"}, `useremail admin-token: unknown subcommand "rotate"; run useremail admin-token --help`},
		{[]string{"admin-token", "create"}, `useremail admin-token create: --name is required; run useremail admin-token create --help`},
		{[]string{"admin-token", "create", "--name", "a b"}, `useremail admin-token create: --name "a b": use letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit; run useremail admin-token create --help`},
		{[]string{"admin-token", "create", "--name", "ops", "extra"}, `useremail admin-token create: unexpected argument "extra"; run useremail admin-token create --help`},
		{[]string{"admin-token", "list", "--frob"}, `useremail admin-token list: unknown flag --frob; run useremail admin-token list --help`},
		{[]string{"admin-token", "revoke"}, `useremail admin-token revoke: want one token name; run useremail admin-token revoke --help`},
		{[]string{"healthcheck", "extra"}, `useremail healthcheck: unexpected argument "extra"; run useremail healthcheck --help`},
		{[]string{"version", "--frob"}, `useremail version: unknown flag --frob; run useremail version --help`},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runBinary(t, dir, nil, "", tt.args...)
			if r.code != 2 || r.stdout != "" || r.stderr != tt.want+"\n" {
				t.Errorf("want exit 2 and the one line %q on stderr; %v", tt.want, r)
			}
			if files := filesIn(t, dir); len(files) > 0 {
				t.Errorf("created %v", files)
			}
		})
	}
}

// TestNoSchema: every command that needs the schema and does not migrate
// says, in one line, to run useremail migrate when the database lacks it,
// and creates no SQLite file; after useremail migrate they work.
func TestNoSchema(t *testing.T) {
	commands := [][]string{
		{"serve", "--no-migrate"},
		{"outbox", "list"},
		{"outbox", "retry", "1"},
		{"outbox", "purge", "--failed"},
		{"audit", "--user", "1"},
		{"user", "create", "--email", "ann@example.com", "--password-stdin"},
		{"export"},
		{"import", "-"},
		{"admin-token", "list"},
	}
	const notMigrated = "is not migrated (its schema is missing or out of date); run useremail migrate"
	cases := []struct {
		name      string
		dialect   store.Dialect
		emptyFile bool // an SQLite file of no bytes; else none
		want      string
	}{
		{"sqlite file missing", store.SQLite, false, "does not exist; run useremail migrate to create it"},
		{"sqlite file empty", store.SQLite, true, notMigrated},
		{"postgres schema empty", store.Postgres, false, notMigrated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := databaseURL(t, c.dialect)
			path, sqlite := sqlitePath(url)
			if c.emptyFile {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := serveEnv(url, nil)
			for _, args := range commands {
				t.Run(strings.Join(args, " "), func(t *testing.T) {
					r := runBinary(t, t.TempDir(), env, testPassword+"\n", args...)
					lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
					if r.code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "useremail: the database ") || !strings.HasSuffix(lines[0], c.want) {
						t.Errorf("want exit 1 and one line ending %q; %v", c.want, r)
					}
				})
			}
			if _, err := os.Stat(path); sqlite && !c.emptyFile && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was created: %v", path, err)
			}

			if r := runBinary(t, t.TempDir(), env, "", "migrate"); r.code != 0 || r.stdout != "database is up to date\n" {
				t.Fatalf("migrate: %v", r)
			}
			if r := runBinary(t, t.TempDir(), env, "", "outbox", "list"); r.code != 0 || !strings.HasPrefix(r.stdout, "ID") {
				t.Errorf("outbox list after migrate: %v", r)
			}
			if r := runBinary(t, t.TempDir(), env, "", "audit", "--user", "1"); r.code != 0 || !strings.HasPrefix(r.stdout, "TIME") {
				t.Errorf("audit after migrate: %v", r)
			}
			startServe(t, "no-migrate", env, "--no-migrate")
		})
	}
}

// TestUserCreate: user create reads the password from standard input with
// --password-stdin (less its final newline, as the login then shows),
// refuses --password and a password argument, needs a terminal to prompt
// on, and holds to the password length.
func TestUserCreate(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := databaseURL(t, d)
			env := serveEnv(url, nil)
			dir := t.TempDir()
			if r := runBinary(t, dir, env, "", "migrate"); r.code != 0 {
				t.Fatalf("migrate: %v", r)
			}
			db := openDB(t, url)
			users := func() int {
				var n int
				if err := db.SQL().Get(&n, `SELECT COUNT(*) FROM users`); err != nil {
					t.Fatal(err)
				}
				return n
			}

			refused := []struct {
				name  string
				args  []string
				stdin string
				code  int
				want  string
			}{
				{"password flag", []string{"--email", "ann@example.com", "--password", testPassword}, "", 2, "a password is never taken as an argument"},
				{"password flag with =", []string{"--email", "ann@example.com", "--password=" + testPassword}, "", 2, "a password is never taken as an argument"},
				{"single-dash password flag", []string{"-password", testPassword, "--email", "ann@example.com"}, "", 2, "a password is never taken as an argument"},
				{"password as an argument", []string{"--email", "ann@example.com", testPassword}, testPassword, 2, "takes no arguments"},
				{"no terminal to prompt on", []string{"--email", "ann@example.com"}, testPassword + "\n", 2, "standard input is not a terminal"},
				{"short password", []string{"--email", "ann@example.com", "--password-stdin"}, "seven77\n", 1, "at least 8 characters"},
				{"common password", []string{"--email", "ann@example.com", "--password-stdin"}, "password123\n", 1, "password_too_weak"},
				{"the address as password", []string{"--email", "ann@example.com", "--password-stdin"}, "Ann@Example.com\n", 1, "password_too_weak"},
				{"long password", []string{"--email", "ann@example.com", "--password-stdin"}, strings.Repeat("é", 1025), 1, "at most 1024 characters"},
				{"no password", []string{"--email", "ann@example.com", "--password-stdin"}, "", 1, "no password given"},
				{"bad address", []string{"--email", "ann@", "--password-stdin"}, testPassword, 1, "--email:"},
			}
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					r := runBinary(t, dir, env, tt.stdin, append([]string{"user", "create"}, tt.args...)...)
					if r.code != tt.code || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tt.want) {
						t.Errorf("want exit %d and one line saying %q; %v", tt.code, tt.want, r)
					}
					if strings.Contains(r.stderr, testPassword) {
						t.Errorf("the password is in the message: %v", r)
					}
					if n := users(); n != 0 {
						t.Errorf("%d users created", n)
					}
				})
			}

			r := runBinary(t, dir, env, testPassword+"\n", "user", "create", "--email", "Ann@Example.com", "--password-stdin", "--verified")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "created user ") || !strings.HasSuffix(r.stdout, " <Ann@example.com>\n") {
				t.Fatalf("user create: %v", r)
			}
			if r := runBinary(t, dir, env, testPassword, "user", "create", "--email", "ann@example.com", "--password-stdin"); r.code != 1 ||
				r.stderr != "useremail: ann@example.com is already in use\n" {
				t.Errorf("user create of a taken address: %v", r)
			}
			if n := users(); n != 1 {
				t.Errorf("%d users, want 1", n)
			}

			p := startServe(t, "useremail", env)
			if _, a := newClient(true).login(p.base, "ann@example.com"); a.Status != http.StatusOK {
				t.Errorf("login with the password given on stdin: %v %s", a, a.Body)
			}
		})
	}
}

// TestUserCreatePrompt: on a terminal (a pseudo-terminal of script(1)),
// user create asks for the password twice and creates the user when both
// agree.
func TestUserCreatePrompt(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("needs script(1) (util-linux) for a terminal")
	}
	url := databaseURL(t, store.SQLite)
	env := serveEnv(url, nil)
	if r := runBinary(t, t.TempDir(), env, "", "migrate"); r.code != 0 {
		t.Fatalf("migrate: %v", r)
	}
	for _, tt := range []struct {
		name, again string
		code        int
		want        string
	}{
		{"two different", "another password", 1, "useremail: the two passwords differ"},
		{"twice the same", testPassword, 0, "created user "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(script, "-qec", "'"+binary(t)+"' user create --email ann@example.com", "/dev/null")
			cmd.Env = processEnv(env)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var out terminalOutput
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for _, answer := range []struct{ prompt, line string }{{"Password: ", testPassword}, {"Password (again): ", tt.again}} {
				if !out.waitFor(answer.prompt, 30*time.Second) {
					_ = cmd.Process.Kill()
					t.Fatalf("no prompt %q: %q", answer.prompt, out.String())
				}
				fmt.Fprintln(stdin, answer.line)
			}
			code := 0
			var ee *exec.ExitError
			if err := cmd.Wait(); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out.String(), tt.want) {
				t.Errorf("want exit %d and %q; exit %d, terminal: %q", tt.code, tt.want, code, out.String())
			}
		})
	}
}

// terminalOutput gathers what a process writes, and tells waiters.
type terminalOutput struct {
	mu   sync.Mutex
	b    strings.Builder
	more chan struct{} // closed at the next write
}

func (o *terminalOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	if o.more != nil {
		close(o.more)
		o.more = nil
	}
	return len(p), nil
}

func (o *terminalOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits until the output holds s, for at most timeout.
func (o *terminalOutput) waitFor(s string, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		o.mu.Lock()
		if strings.Contains(o.b.String(), s) {
			o.mu.Unlock()
			return true
		}
		if o.more == nil {
			o.more = make(chan struct{})
		}
		more := o.more
		o.mu.Unlock()
		select {
		case <-more:
		case <-timer.C:
			return false
		}
	}
}

// TestAdminTokenCommands: admin-token create prints the token once, alone
// on the last line; list shows the tokens (never a token); the tokens work
// against a real serve by kind; revoke ends one at once; a revoked token's
// name may be given again.
func TestAdminTokenCommands(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			url := databaseURL(t, d)
			env := serveEnv(url, nil)
			dir := t.TempDir()
			if r := runBinary(t, dir, env, "", "migrate"); r.code != 0 {
				t.Fatalf("migrate: %v", r)
			}
			create := func(args ...string) string {
				t.Helper()
				r := runBinary(t, dir, env, "", append([]string{"admin-token", "create"}, args...)...)
				lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
				token := lines[len(lines)-1]
				if r.code != 0 || r.stderr != "" || !strings.HasPrefix(token, "uea_") || len(token) != 47 {
					t.Fatalf("admin-token create %v: %v", args, r)
				}
				return token
			}
			ops := create("--name", "ops")
			support := create("--name", "support", "--read-only")
			if r := runBinary(t, dir, env, "", "admin-token", "create", "--name", "ops"); r.code != 1 || !strings.Contains(r.stderr, `a live admin token is called "ops" already`) {
				t.Errorf("a second ops token: %v", r)
			}
			r := runBinary(t, dir, env, "", "admin-token", "list")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME") || !strings.Contains(r.stdout, "ops ") ||
				!strings.Contains(r.stdout, "read-only") || strings.Contains(r.stdout, ops) || strings.Contains(r.stdout, support) {
				t.Errorf("admin-token list: %v", r)
			}
			var stored int
			if err := openDB(t, url).SQL().Get(&stored, `SELECT COUNT(*) FROM admin_tokens`); err != nil || stored != 2 {
				t.Errorf("%d tokens stored, %v", stored, err)
			}

			p := startServe(t, "useremail", env)
			c := newClient(true)
			bearer := func(token string) map[string]string { return map[string]string{"Authorization": "Bearer " + token} }
			body := map[string]any{"email": "ann@example.com", "verified": true}
			for _, tt := range []struct {
				name, method, path string
				body               any
				token              string
				status             int
				code               string
			}{
				{"read-only reads", "GET", "/admin/users/", nil, support, 200, ""},
				{"read-only writes", "POST", "/admin/users/", body, support, 403, "forbidden"},
				{"read-write writes", "POST", "/admin/users/", body, ops, 201, ""},
				{"no token", "GET", "/admin/users/", nil, "", 401, "not_authenticated"},
			} {
				h := bearer(tt.token)
				if tt.token == "" {
					h = nil
				}
				a := c.do(tt.method, p.base+tt.path, tt.method+" "+tt.path, tt.body, h)
				if a.Status != tt.status || a.Code != tt.code {
					t.Errorf("%s: %v %s", tt.name, a, a.Body)
				}
			}

			if r := runBinary(t, dir, env, "", "admin-token", "revoke", "ops"); r.code != 0 || r.stdout != "admin token \"ops\" revoked\n" {
				t.Errorf("revoke: %v", r)
			}
			if a := c.do("GET", p.base+"/admin/users/", "GET /admin/users/", nil, bearer(ops)); a.Status != 401 || a.Code != "token_invalid" {
				t.Errorf("a revoked token: %v %s", a, a.Body)
			}
			if r := runBinary(t, dir, env, "", "admin-token", "revoke", "ops"); r.code != 1 || !strings.Contains(r.stderr, `no live admin token is called "ops"`) {
				t.Errorf("revoke twice: %v", r)
			}
			again := create("--name", "ops")
			if a := c.do("GET", p.base+"/admin/users/", "GET /admin/users/", nil, bearer(again)); a.Status != 200 {
				t.Errorf("the new ops token: %v %s", a, a.Body)
			}
			r = runBinary(t, dir, env, "", "admin-token", "list")
			if r.code != 0 || strings.Count(r.stdout, "revoked ") != 1 || !strings.Contains(r.stdout, "LAST USED") {
				t.Errorf("list after revoke: %v", r)
			}
		})
	}
}
