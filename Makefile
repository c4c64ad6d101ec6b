# useremail — the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
BIN     ?= bin/useremail
PKGS    ?= ./...
# PostgreSQL runs of the tests: set USEREMAIL_TEST_DATABASE_URL, e.g.
#   make test USEREMAIL_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
export USEREMAIL_TEST_DATABASE_URL

.PHONY: run test build generate check fmt vet bench bench-1m bench-go fuzz clean sdk lint-spec breaking fuzz-spec test-ops axe

## run: build and serve on the embedded SQLite file in dev mode (mail is printed to the log)
run:
	USEREMAIL_DEV=true $(GO) run ./cmd/useremail serve

# NODE is node's path when it is installed: then `make test` installs the
# SDK's and the contract tools' dependencies itself, and the Node tests fail
# (never skip) when the TypeScript SDK or its schema is stale.
NODE := $(shell command -v node 2>/dev/null)
# With Chromium (and Node, for axe-core) the browser tests are required, and
# with Debian's Django packages the Django tests: present tools never skip.
BROWSER := $(if $(NODE),$(shell command -v chromium 2>/dev/null))
DJANGO := $(shell /usr/bin/python3 -c 'import django, allauth, argon2, bcrypt' 2>/dev/null && echo yes)

## test: every test; on SQLite always, on PostgreSQL too when USEREMAIL_TEST_DATABASE_URL is set
test: $(if $(NODE),sdk/typescript/node_modules tools/contract/node_modules webhook/testdata/node/node_modules) $(if $(BROWSER),tools/axe/node_modules)
	$(if $(NODE),USEREMAIL_REQUIRE_NODE=1) $(if $(BROWSER),USEREMAIL_REQUIRE_BROWSER=1) $(if $(DJANGO),USEREMAIL_REQUIRE_PYTHON=1) $(GO) test -count=1 -timeout 45m $(PKGS)

## build: the binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/useremail

## generate: regenerate gen/ and the Go client module's client/client.gen.go from openapi.yaml
generate:
	$(GO) generate ./gen

## check: formatting and vet (the tests check that gen/ is current)
check: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
## bench: useremail against the bare Echo+sqlx baseline (bench/) on the local PostgreSQL and SQLite, 10,000 users (~20 min); rewrites docs/PERFORMANCE.md
bench:
	$(GO) run ./bench -pg '$(BENCH_DATABASE_URL)'

## bench-1m: the same at 1,000,000 users on PostgreSQL, with the read scale check (~15 min)
bench-1m:
	$(GO) run ./bench -pg '$(BENCH_DATABASE_URL)' -users 1000000 -sqlite=false

## bench-go: the Go micro-benchmarks (mail dispatch throughput among them)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: each fuzz target for FUZZTIME (default 30s); `make test` runs their seed corpora
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./signer -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME)
	$(GO) test ./signer -run '^$$' -fuzz '^FuzzDecodeUserID$$' -fuzztime $(FUZZTIME)
	$(GO) test ./address -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz '^FuzzLinkEndpoints$$' -fuzztime $(FUZZTIME)

## fuzz-spec: the spec-driven request fuzzer with 30,000 requests per store
fuzz-spec:
	$(GO) test -count=1 -run '^TestSpecFuzz$$' ./server -fuzzdeep

## test-ops: the process tests (three replicas, database restart, crash, SIGTERM under load)
test-ops:
	$(GO) test -count=1 -timeout 15m -v -run 'TestReplicas|TestDatabaseRestart|TestCrashMidBurst|TestGracefulShutdown|TestShutdownGraceExpires|TestMetricsAndLogs' ./cmd/useremail

sdk/typescript/node_modules: sdk/typescript/package-lock.json
	cd sdk/typescript && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

tools/contract/node_modules: tools/contract/package-lock.json
	cd tools/contract && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

# The standardwebhooks package that verifies real deliveries in the server's tests.
webhook/testdata/node/node_modules: webhook/testdata/node/package-lock.json
	cd webhook/testdata/node && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

tools/axe/node_modules: tools/axe/package-lock.json
	cd tools/axe && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

## axe: install axe-core for the pages' browser tests (they install it themselves when npm is there)
axe: tools/axe/node_modules

## sdk: regenerate the SDKs from openapi.yaml: the Go clients (gen/, client/) and the TypeScript types and package version in sdk/typescript
sdk: generate sdk/typescript/node_modules
	cd sdk/typescript && npm run generate && npm run build

## lint-spec: kin-openapi's strict validation and Spectral (.spectral.yaml) on openapi.yaml
lint-spec: tools/contract/node_modules
	$(GO) test -count=1 -run '^TestSpecValid$$' ./tools/contract
	tools/contract/node_modules/.bin/spectral lint openapi.yaml --fail-severity=warn

## breaking: fail on breaking changes to openapi.yaml unless info.version's major number went up
breaking:
	scripts/check-breaking.sh

clean:
	rm -rf bin
