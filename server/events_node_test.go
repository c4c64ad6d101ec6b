package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
	"github.com/useremail/useremail/webhook"
)

// nodeVerifier is the folder of the Node script that verifies deliveries
// with the standardwebhooks package.
const nodeVerifier = "../webhook/testdata/node"

// nodeWithStandardWebhooks returns node's path once the verifier's
// node_modules is installed, or skips; with USEREMAIL_REQUIRE_NODE set
// (CI) it fails instead.
func nodeWithStandardWebhooks(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(nodeVerifier, "node_modules", "standardwebhooks"))
	}
	if err != nil {
		if os.Getenv("USEREMAIL_REQUIRE_NODE") != "" {
			t.Fatalf("USEREMAIL_REQUIRE_NODE is set but: %v (install node, then `npm ci` in webhook/testdata/node)", err)
		}
		t.Skipf("node or webhook/testdata/node/node_modules is missing (%v): `npm ci` there, or set USEREMAIL_REQUIRE_NODE to make this a failure", err)
	}
	return node
}

// TestWebhooksVerifiedByStandardWebhooksNode has the standardwebhooks npm
// package (1.1.1) verify real deliveries of real changes, signed with two
// secrets, by a receiver that knows only the second: as during a rotation.
func TestWebhooksVerifiedByStandardWebhooksNode(t *testing.T) {
	node := nodeWithStandardWebhooks(t)
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		r := newReceiver(t, time.Now)
		e := newEnv(t, db, withoutLimits(), withWebhooks(r.srv.URL))
		// The package checks webhook-timestamp against the real clock.
		e.dispatcher = e.newDispatcher(func(c *mail.Config) {
			signer, _ := webhook.NewSigner(webhookSecrets...)
			c.Webhooks = webhook.NewClient(signer, nil, nil)
		})
		u := e.verifiedUser("node@example.com")
		e.addEmail(u, "node-2@example.com")
		e.deliver()

		type delivery struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		var file struct {
			Secret     string     `json:"secret"`
			Deliveries []delivery `json:"deliveries"`
		}
		file.Secret = webhookSecrets[1].String()
		r.mu.Lock()
		for _, a := range r.attempts {
			file.Deliveries = append(file.Deliveries, delivery{Body: string(a.body), Headers: map[string]string{
				"webhook-id": a.id, "webhook-timestamp": a.timestamp, "webhook-signature": a.signature,
			}})
		}
		r.mu.Unlock()
		if len(file.Deliveries) != 3 {
			t.Fatalf("%d deliveries, want 3", len(file.Deliveries))
		}
		path := filepath.Join(t.TempDir(), "deliveries.json")
		b, _ := json.Marshal(file)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, node, "verify.mjs", path)
		cmd.Dir = nodeVerifier
		out, err := cmd.CombinedOutput()
		t.Logf("node verify.mjs:\n%s", out)
		if err != nil || !strings.Contains(string(out), "verified "+strconv.Itoa(len(file.Deliveries))+" of ") {
			t.Fatalf("standardwebhooks did not verify every delivery: %v", err)
		}
	})
}
