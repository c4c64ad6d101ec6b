# useremail — the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
BIN     ?= bin/useremail
PKGS    ?= ./...
# PostgreSQL runs of the tests: set USEREMAIL_TEST_DATABASE_URL, e.g.
#   make test USEREMAIL_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
export USEREMAIL_TEST_DATABASE_URL

.PHONY: run test build generate check fmt vet bench fuzz clean

## run: build and serve on the embedded SQLite file in dev mode (mail is printed to the log)
run:
	USEREMAIL_DEV=true $(GO) run ./cmd/useremail serve

## test: every test; on SQLite always, on PostgreSQL too when USEREMAIL_TEST_DATABASE_URL is set
test:
	$(GO) test -count=1 -timeout 45m $(PKGS)

## build: the binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/useremail

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen

## check: formatting and vet (the tests check that gen/ is current)
check: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

## bench: the Go benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./signer -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME)
	$(GO) test ./signer -run '^$$' -fuzz '^FuzzDecodeUserID$$' -fuzztime $(FUZZTIME)
	$(GO) test ./address -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
