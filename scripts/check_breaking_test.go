// Package scripts_test tests the shell scripts of this folder.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repo is a scratch git repository with the real openapi.yaml in it.
type repo struct {
	t    *testing.T
	dir  string
	spec string // the repository's openapi.yaml, as a starting point
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	spec, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := &repo{t: t, dir: t.TempDir(), spec: string(spec)}
	r.git("init", "-q")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com",
		"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// write puts spec into the work tree.
func (r *repo) write(spec string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, "openapi.yaml"), []byte(spec), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) commit(spec, msg string) {
	r.t.Helper()
	r.write(spec)
	r.git("add", "openapi.yaml")
	r.git("commit", "-q", "-m", msg)
}

// check runs the script in the repository; it reports whether it passed.
func (r *repo) check(args ...string) (bool, string) {
	r.t.Helper()
	script, err := filepath.Abs("check-breaking.sh")
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			r.t.Fatalf("check-breaking.sh: %v\n%s", err, out)
		}
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
		r.t.Fatalf("check-breaking.sh exited %d (want 0 or 1):\n%s", code, out)
	}
	return err == nil, string(out)
}

// Edits of the spec text.

func withVersion(spec, version string) string {
	return replaceOnce(spec, "\n  version: 1.0.0\n", "\n  version: "+version+"\n")
}

// withoutPath removes the path item from its line to the next path or to
// the components.
func withoutPath(spec, path string) string {
	start := strings.Index(spec, "\n  "+path+":\n")
	if start < 0 {
		panic("no path " + path)
	}
	rest := spec[start+1:]
	end := strings.Index(rest[len(path)+4:], "\n  /")
	if c := strings.Index(rest, "\ncomponents:"); end < 0 || c < end+len(path)+4 {
		end = c - len(path) - 4
	}
	return spec[:start+1] + rest[end+len(path)+4+1:]
}

// withOptionalField adds an optional property to the NewEmail request body.
func withOptionalField(spec string) string {
	return replaceOnce(spec, "    NewEmail:\n      type: object\n      description: An address to add.\n      required: [email]\n      additionalProperties: false\n      properties:\n",
		"    NewEmail:\n      type: object\n      description: An address to add.\n      required: [email]\n      additionalProperties: false\n      properties:\n"+
			"        label:\n          type: string\n          maxLength: 100\n          description: A name for the address.\n          example: work\n")
}

func replaceOnce(s, old, new string) string {
	if strings.Count(s, old) != 1 {
		panic("edit does not apply: " + old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestCheckBreaking(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: the script runs `go tool oasdiff`")
	}
	r := newRepo(t)
	r.commit(r.spec, "the API 1.0.0")

	t.Run("unchanged", func(t *testing.T) {
		r.write(r.spec)
		if ok, out := r.check(); !ok || !strings.Contains(out, "no breaking change") {
			t.Errorf("unchanged spec failed:\n%s", out)
		}
	})
	t.Run("removed endpoint without a version bump fails", func(t *testing.T) {
		r.write(withoutPath(r.spec, "/metrics"))
		ok, out := r.check()
		if ok || !strings.Contains(out, "/metrics") || !strings.Contains(out, "first commit with openapi.yaml") {
			t.Errorf("removing /metrics passed, or the report does not name it or the base:\n%s", out)
		}
	})
	t.Run("removed endpoint with a minor bump fails", func(t *testing.T) {
		r.write(withVersion(withoutPath(r.spec, "/metrics"), "1.1.0"))
		if ok, out := r.check(); ok {
			t.Errorf("removing /metrics with 1.1.0 passed:\n%s", out)
		}
	})
	t.Run("removed endpoint with a major bump passes", func(t *testing.T) {
		r.write(withVersion(withoutPath(r.spec, "/metrics"), "2.0.0"))
		if ok, out := r.check(); !ok || !strings.Contains(out, "major version went up") {
			t.Errorf("removing /metrics with 2.0.0 failed:\n%s", out)
		}
	})
	t.Run("added optional field passes", func(t *testing.T) {
		r.write(withOptionalField(r.spec))
		if ok, out := r.check(); !ok || !strings.Contains(out, "no breaking change") {
			t.Errorf("an optional request field failed:\n%s", out)
		}
	})
	t.Run("an explicit base", func(t *testing.T) {
		r.write(withoutPath(r.spec, "/metrics"))
		if ok, out := r.check("HEAD"); ok || !strings.Contains(out, "(given)") {
			t.Errorf("against HEAD, removing /metrics passed:\n%s", out)
		}
	})
}

// The base is the newest v* tag when there is one: a change is judged
// against the last release, not the first commit.
func TestCheckBreakingBaseIsNewestTag(t *testing.T) {
	r := newRepo(t)
	r.commit(r.spec, "1.0.0")
	r.git("tag", "v1.0.0")
	v2 := withVersion(withoutPath(r.spec, "/metrics"), "2.0.0")
	r.commit(v2, "2.0.0 drops /metrics")
	r.git("tag", "v2.0.0")

	r.write(withoutPath(v2, "/healthz")) // still 2.0.0
	ok, out := r.check()
	if ok || !strings.Contains(out, "against v2.0.0 (newest tag)") || !strings.Contains(out, "/healthz") {
		t.Errorf("removing /healthz after v2.0.0 passed, or not against v2.0.0:\n%s", out)
	}
	r.write(v2)
	if ok, out := r.check(); !ok {
		t.Errorf("the tagged spec itself failed:\n%s", out)
	}
}

// Without a tag, the base is the merge base with origin/main.
func TestCheckBreakingBaseIsMergeBase(t *testing.T) {
	r := newRepo(t)
	r.commit(r.spec, "first")
	// A breaking change that main accepted (no bump): later branches are
	// judged against main, not against the first commit.
	main := withoutPath(r.spec, "/metrics")
	r.commit(main, "main drops /metrics")
	r.git("update-ref", "refs/remotes/origin/main", "HEAD")
	r.git("checkout", "-q", "-b", "feature")

	r.write(withOptionalField(main))
	if ok, out := r.check(); !ok || !strings.Contains(out, "merge base with origin/main") {
		t.Errorf("a compatible change on a branch failed, or not against the merge base:\n%s", out)
	}
	r.write(withoutPath(main, "/healthz"))
	if ok, out := r.check(); ok {
		t.Errorf("removing /healthz on a branch passed:\n%s", out)
	}
}
