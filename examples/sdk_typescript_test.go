// Package examples_test runs the TypeScript SDK's tests (sdk/typescript)
// against a real server, and checks that its generated types are current.
package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	useremail "github.com/useremail/useremail"
	"github.com/useremail/useremail/examples/internal/testserver"
	"github.com/useremail/useremail/server"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

const sdkDir = "../sdk/typescript"

// nodeSDK returns node's path once the SDK's node_modules is installed, or
// skips; with USEREMAIL_REQUIRE_NODE set (CI) it fails instead.
func nodeSDK(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(sdkDir, "node_modules", "openapi-fetch"))
	}
	if err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_NODE") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_NODE is set but: %v (install node, then `npm ci` in sdk/typescript)", err)
		}
		t.Skipf("node or the SDK's node_modules is missing (%v): `npm ci` in sdk/typescript, or set USEREMAIL_REQUIRE_NODE to make this a failure", err)
	}
	return node
}

func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestTypeScriptSDK compiles the SDK with its tsc and runs its Node tests
// (node --test) against a real server on each store. The tests read the
// mailed links from a test-only mailbox endpoint of this test binary.
func TestTypeScriptSDK(t *testing.T) {
	node := nodeSDK(t)
	runIn(t, sdkDir, nil, node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json")
	schema, err := os.ReadFile(filepath.Join(sdkDir, "src", "schema.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sdkDir, "dist", "schema.d.ts"), schema, 0o644); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		srv := testserver.Start(t, db)
		mailbox := httptest.NewServer(srv.Mailbox())
		t.Cleanup(mailbox.Close)
		token := adminToken(t, db, "ts", false)
		reader := adminToken(t, db, "ts-reader", true)
		out := runIn(t, sdkDir, []string{"USEREMAIL_URL=" + srv.URL, "USEREMAIL_MAILBOX_URL=" + mailbox.URL,
			"USEREMAIL_ADMIN_TOKEN=" + token, "USEREMAIL_ADMIN_READONLY_TOKEN=" + reader, "NODE_NO_WARNINGS=1"},
			node, "--test", "--test-reporter=spec", "test/flow.test.mjs", "test/admin.test.mjs")
		t.Logf("node --test:\n%s", out)
		if !bytes.Contains([]byte(out), []byte("fail 0")) || bytes.Contains([]byte(out), []byte("skipped ")) && !bytes.Contains([]byte(out), []byte("skipped 0")) {
			t.Errorf("node --test did not pass every test")
		}
	})
}

// adminToken makes an admin API token as useremail admin-token create does.
func adminToken(t *testing.T, db *store.DB, name string, readOnly bool) string {
	t.Helper()
	token, hash := server.NewAdminToken()
	if _, err := db.CreateAdminToken(context.Background(), name, hash, readOnly, time.Now()); err != nil {
		t.Fatal(err)
	}
	return token
}

// TestTypeScriptVersion: the SDK's package version is the API's
// (openapi.yaml info.version), in package.json and its lock file; `make
// sdk` sets it.
func TestTypeScriptVersion(t *testing.T) {
	var spec struct {
		Info struct {
			Version string `yaml:"version"`
		} `yaml:"info"`
	}
	if err := yaml.Unmarshal(useremail.SpecYAML, &spec); err != nil || spec.Info.Version == "" {
		t.Fatalf("openapi.yaml info.version: %q %v", spec.Info.Version, err)
	}
	for _, file := range []string{"package.json", "package-lock.json"} {
		raw, err := os.ReadFile(filepath.Join(sdkDir, file))
		if err != nil {
			t.Fatal(err)
		}
		var pkg struct {
			Version  string `json:"version"`
			Packages map[string]struct {
				Version string `json:"version"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(raw, &pkg); err != nil {
			t.Fatal(err)
		}
		if pkg.Version != spec.Info.Version {
			t.Errorf("sdk/typescript/%s version %q, openapi.yaml info.version %q: run `make sdk`", file, pkg.Version, spec.Info.Version)
		}
		if root, ok := pkg.Packages[""]; ok && root.Version != spec.Info.Version {
			t.Errorf("sdk/typescript/%s packages[\"\"].version %q, openapi.yaml info.version %q: run `make sdk`", file, root.Version, spec.Info.Version)
		}
	}
}

// TestTypeScriptSchemaCurrent regenerates the SDK's types from openapi.yaml
// and fails when src/schema.d.ts differs: run `make sdk`.
func TestTypeScriptSchemaCurrent(t *testing.T) {
	node := nodeSDK(t)
	fresh := filepath.Join(t.TempDir(), "schema.d.ts")
	runIn(t, sdkDir, nil, node, "node_modules/openapi-typescript/bin/cli.js", "../../openapi.yaml", "-o", fresh)
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(sdkDir, "src", "schema.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("sdk/typescript/src/schema.d.ts is stale: openapi.yaml changed; run `make sdk` and commit the result")
	}
}
