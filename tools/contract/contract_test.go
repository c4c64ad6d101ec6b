// Package contract_test lints openapi.yaml: kin-openapi's strict validation
// always, and Spectral with the repository's ruleset (.spectral.yaml) when
// this folder's node_modules is installed (`npm ci`; CI sets
// USEREMAIL_REQUIRE_NODE so that a missing install fails instead of
// skipping).
package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/useremail/useremail"
)

const specPath = "../../openapi.yaml"

// TestSpecValid loads openapi.yaml with kin-openapi and validates it with
// every check on: unknown formats, patterns, defaults and examples against
// their schemas, no extensions beside $ref, no external references.
func TestSpecValid(t *testing.T) {
	// The formats openapi.yaml uses beyond OpenAPI's own: the server
	// checks "email" itself (address normalization).
	openapi3.DefineStringFormatValidator("email", openapi3.NewCallbackValidator(func(string) error { return nil }))
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	err = doc.Validate(context.Background(),
		openapi3.EnableSchemaFormatValidation(),
		openapi3.EnableSchemaPatternValidation(),
		openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableExamplesValidation(),
		openapi3.ProhibitExtensionsWithRef(),
		openapi3.EnableMultiError(),
	)
	if err != nil {
		t.Fatalf("%s is not valid:\n%v", specPath, err)
	}
	ids := map[string]string{}
	for _, path := range doc.Paths.Keys() {
		for method, op := range doc.Paths.Value(path).Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %s on %s and %s", op.OperationID, other, where)
			}
			ids[op.OperationID] = where
		}
	}
	file, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, useremail.SpecYAML) {
		t.Errorf("the embedded spec (useremail.SpecYAML) differs from %s", specPath)
	}
}

// spectral returns the command that runs this folder's Spectral, or skips.
func spectral(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("node_modules", ".bin", "spectral"))
	if err != nil {
		t.Fatal(err)
	}
	_, errNode := exec.LookPath("node")
	if _, err := os.Stat(bin); err != nil || errNode != nil {
		if os.Getenv("USEREMAIL_REQUIRE_NODE") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_NODE is set but Spectral is not installed (%v, %v): run `npm ci` in tools/contract", err, errNode)
		}
		t.Skip("Spectral is not installed: run `npm ci` in tools/contract (or set USEREMAIL_REQUIRE_NODE to make this a failure)")
	}
	return bin
}

type spectralResult struct {
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Path     []string `json:"path"`
	Severity int      `json:"severity"` // 0 error, 1 warn, 2 info, 3 hint
	Source   string   `json:"source"`
}

// lint runs Spectral on files with the repository's ruleset.
func lint(t *testing.T, files ...string) (results []spectralResult, failed bool) {
	t.Helper()
	args := append([]string{"lint"}, files...)
	args = append(args, "--ruleset", "../../.spectral.yaml", "--fail-severity=warn", "--format", "json", "--quiet")
	cmd := exec.Command(spectral(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("spectral: %v", err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &results); err != nil && stdout.Len() > 0 {
		t.Fatalf("spectral output: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if err != nil && len(results) == 0 {
		t.Fatalf("spectral failed without findings: %v\n%s", err, stderr.String())
	}
	return results, err != nil
}

// TestSpectral lints openapi.yaml (`spectral lint --fail-severity=warn`
// must pass), and a mutant of it that breaks each rule of the ruleset once,
// to show that every rule catches what it is for. (One run for both: each
// file takes seconds.)
func TestSpectral(t *testing.T) {
	spectral(t)
	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	mutant := string(spec)
	// Each edit breaks one rule; the rules are independent of each other.
	edits := []struct{ rule, old, new string }{
		{"useremail-operation-id", "      operationId: GetMetrics\n", ""},
		{"useremail-schema-example", "      example:\n        status: ok\n\n    ErrorCode:", "\n    ErrorCode:"},
		{"useremail-property-example",
			"          description: A URI that names the kind of problem.\n          example: urn:useremail:problem:validation_error\n",
			"          description: A URI that names the kind of problem.\n"},
		{"useremail-request-body-example",
			"            example:\n              email: alice@work.example\n      responses:", "      responses:"},
		{"useremail-success-example", "              example:\n                status: ok\n\n  /readyz:", "\n  /readyz:"},
		{"useremail-error-response-shared",
			"        '201':\n          description: User created\n",
			"        '409':\n          description: Conflict\n          content:\n            application/json:\n              schema:\n                type: object\n              example: {}\n" +
				"        '201':\n          description: User created\n"},
		{"useremail-error-response-problem",
			"    PayloadTooLarge:\n      description: The body is over the size limit.\n      content:\n        application/problem+json:\n          schema:\n            $ref: '#/components/schemas/Problem'",
			"    PayloadTooLarge:\n      description: The body is over the size limit.\n      content:\n        application/problem+json:\n          schema:\n            $ref: '#/components/schemas/FieldError'"},
		{"useremail-error-response-media-types",
			"    NotFound:\n      description: No such address of this user.\n      content:\n",
			"    NotFound:\n      description: No such address of this user.\n      content:\n        text/plain:\n          schema:\n            type: string\n          example: nope\n"},
		{"useremail-link-error-media-types",
			"          example: <!doctype html><title>Link expired</title>…\n",
			"          example: <!doctype html><title>Link expired</title>…\n        text/plain:\n          schema:\n            type: string\n          example: expired\n"},
		{"oas3-unused-component", "  schemas:\n    Email:\n", "  schemas:\n    Unused:\n      type: string\n      example: x\n    Email:\n"},
		{"oas3-valid-media-example",
			"            example:\n              new_email: alice@new.example\n", "            example:\n              new_email: 42\n"},
	}
	for _, e := range edits {
		if strings.Count(mutant, e.old) != 1 {
			t.Fatalf("the edit for %s does not apply to openapi.yaml any more: update it", e.rule)
		}
		mutant = strings.Replace(mutant, e.old, e.new, 1)
	}
	mutantPath := filepath.Join(t.TempDir(), "mutant.yaml")
	if err := os.WriteFile(mutantPath, []byte(mutant), 0o644); err != nil {
		t.Fatal(err)
	}

	results, failed := lint(t, specPath, mutantPath)
	if !failed {
		t.Errorf("spectral passed the mutant")
	}
	fired := map[string]bool{}
	for _, r := range results {
		if filepath.Base(r.Source) == "mutant.yaml" {
			fired[r.Code] = true
			continue
		}
		t.Errorf("openapi.yaml: %s (severity %d) at %s: %s", r.Code, r.Severity, strings.Join(r.Path, "."), r.Message)
	}
	for _, e := range edits {
		if !fired[e.rule] {
			t.Errorf("rule %s did not fire on its mutant", e.rule)
		}
	}
	codes := make([]string, 0, len(fired))
	for c := range fired {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	t.Logf("openapi.yaml is clean; the mutant fired %s", strings.Join(codes, ", "))
}
