package gen_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the code from openapi.yaml and
// fails when it differs from the committed files: gen/api.gen.go and the
// Go client module's client/client.gen.go. Run `make generate`.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	for _, c := range []struct{ cfg, output, committed string }{
		{"cfg.yaml", "output: api.gen.go", "api.gen.go"},
		{"../client/cfg.yaml", "output: ../client/client.gen.go", "../client/client.gen.go"},
	} {
		t.Run(c.committed, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := os.ReadFile(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The same configuration, writing into the temporary folder.
			out := filepath.Join(dir, filepath.Base(c.committed))
			if !bytes.Contains(cfg, []byte(c.output)) {
				t.Fatalf("%s has no %q", c.cfg, c.output)
			}
			cfg = bytes.Replace(cfg, []byte(c.output), []byte("output: "+out), 1)
			if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(dir, "cfg.yaml"), "../openapi.yaml")
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("oapi-codegen: %v\n%s", err, msg)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(c.committed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is stale: openapi.yaml or the generator changed; run `make generate` and commit the result", c.committed)
			}
		})
	}
}
