package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is what the tests read of a docker compose file.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Restart     string            `yaml:"restart"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
}

// pinnedImage is an image reference with a release tag (postgres:16.13,
// axllent/mailpit:v1.33.1) or a digest, never a floating one (latest, 16).
var pinnedImage = regexp.MustCompile(`^[a-z0-9./-]+(:v?\d+\.\d+(\.\d+)?[a-z0-9.-]*|(:[a-z0-9.-]+)?@sha256:[0-9a-f]{64})$`)

// secretFromEnvironment is a compose interpolation that stops the compose
// file with a message when the variable is unset or empty.
var secretFromEnvironment = regexp.MustCompile(`^\$\{USEREMAIL_SECRET_KEYS:\?[^}$"]+\}$`)

// TestComposeFiles checks the compose files (no Docker engine runs them
// here): they parse, every image is pinned, every service restarts, the
// signing secret comes from the operator's environment, and the metrics
// listen apart from the API on a port not published to the host. The
// service's environment, with a real secret, is a configuration serve
// accepts; with the old example secret, one it refuses.
func TestComposeFiles(t *testing.T) {
	for _, path := range []string{"../../docker-compose.yml", "../../deploy/docker-compose.replicas.yml"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var f composeFile
			if err := yaml.Unmarshal(raw, &f); err != nil {
				t.Fatalf("does not parse: %v", err)
			}
			services := 0
			for name, s := range f.Services {
				if s.Image == "" && s.Build == nil {
					t.Errorf("%s: neither image nor build", name)
				}
				if s.Build == nil && !pinnedImage.MatchString(s.Image) {
					t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
				}
				if s.Restart != "unless-stopped" && s.Restart != "always" {
					t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
				}
				if s.Environment["USEREMAIL_ADDR"] == "" {
					continue
				}
				services++
				checkUseremailService(t, name, s)
			}
			if services == 0 {
				t.Error("no useremail service")
			}
		})
	}
}

func checkUseremailService(t *testing.T, name string, s composeService) {
	env := s.Environment
	if !secretFromEnvironment.MatchString(env["USEREMAIL_SECRET_KEYS"]) {
		t.Errorf("%s: USEREMAIL_SECRET_KEYS is %q, want ${USEREMAIL_SECRET_KEYS:?…}", name, env["USEREMAIL_SECRET_KEYS"])
	}
	_, metricsPort, err := net.SplitHostPort(env["USEREMAIL_METRICS_ADDR"])
	if err != nil {
		t.Fatalf("%s: USEREMAIL_METRICS_ADDR %q: %v", name, env["USEREMAIL_METRICS_ADDR"], err)
	}
	_, apiPort, _ := net.SplitHostPort(env["USEREMAIL_ADDR"])
	if metricsPort == apiPort {
		t.Errorf("%s: the metrics listen on the API's port %s", name, apiPort)
	}
	for _, p := range s.Ports {
		// HOST:CONTAINER, or CONTAINER alone.
		parts := strings.Split(p, ":")
		if parts[len(parts)-1] == metricsPort {
			t.Errorf("%s: publishes the metrics port on the host: %q", name, p)
		}
	}

	withSecret := func(secret string) func(string) string {
		return func(k string) string {
			if k == "USEREMAIL_SECRET_KEYS" {
				return secret
			}
			return env[k]
		}
	}
	if _, err := loadConfig(withSecret("q2N0m9Zb7VxR4tYp1sLk8JdF3hGc6WaE5uIo0PyTnMvBrXe")); err != nil {
		t.Errorf("%s: serve refuses the compose environment: %v", name, err)
	}
	_, err = loadConfig(withSecret("change-me-to-a-long-random-secret-of-48-characters"))
	if ce, ok := err.(configError); !ok || len(ce.problems) != 1 || !strings.Contains(ce.problems[0], "placeholder") {
		t.Errorf("%s: serve takes the old example secret: %v", name, err)
	}
}

// TestDockerfilePinned: the Dockerfile's images are pinned too.
func TestDockerfilePinned(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	images := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "FROM" {
			continue
		}
		images++
		if !pinnedImage.MatchString(fields[1]) {
			t.Errorf("FROM %s is not pinned to a version or a digest", fields[1])
		}
	}
	if images == 0 {
		t.Fatal("no FROM line")
	}
}
