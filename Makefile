# OctoStore — common tasks. `make run` serves on 127.0.0.1:8080 with a SQLite
# file; `make test` runs every test (real redis-server and Redis Cluster
# included when redis-server and redis-cli are installed; -race where a C
# compiler is installed).

GO        ?= go
# Every target builds and tests with this Go: 1.26.8, the module's minimum,
# has standard-library vulnerabilities that the server reaches (net/http,
# net/textproto, crypto/x509, html/template; `make vulncheck`), fixed in
# 1.27.3. The go command fetches it from the module proxy on first use
# (76 MB, seconds). GOTOOLCHAIN=local uses the Go on PATH instead.
GOTOOLCHAIN ?= go1.27.3
export GOTOOLCHAIN
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/octostore/octostore/internal/buildinfo.version=$(VERSION)
PKGS      := ./...

.PHONY: all run local build test test-short lint fmt vet build32 build-os bench fuzz soak cover clean build-OctoStoreFunction

all: lint test

## run: start the self-hosted server (SQLite file ./octostore.db)
run:
	$(GO) run ./cmd/octostore serve

## local: start the local development server (in-process miniredis)
local:
	$(GO) run ./local

## build: the single binary and the Lambda bootstrap into ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/octostore ./cmd/octostore
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -tags lambda.norpc -o bin/bootstrap ./cmd/octostore-lambda

## test: every test, with the race detector where it can run: it needs
## cgo and so a C compiler (`go env CC`); on a machine without one the
## tests run without it and say so first. RACE=-race insists (CI sets it:
## there a missing compiler is an error, not a quieter run).
RACE ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC | cut -d' ' -f1)" >/dev/null 2>&1 && echo -race)
test:
	@[ -n "$(RACE)" ] || echo "make test: no C compiler ($$($(GO) env CC)) or CGO_ENABLED=0, so no race detector; install gcc for go test -race" >&2
	$(GO) test $(RACE) -count=1 -timeout 15m $(PKGS)

## test-short: the quick subset
test-short:
	$(GO) test -short -count=1 $(PKGS)

## lint: gofmt, go vet, and the 32-bit Windows build (build32)
## fmt checks the tracked Go files, or every Go file where git cannot list
## them (no checkout, or git refusing a directory owned by another user);
## an empty list is an error, never a silent pass, and gofmt never reads
## stdin (with no file arguments it would check stdin, or wait on it).
lint: fmt vet build32
fmt:
	@files=$$(git ls-files '*.go' 2>/dev/null) || files=$$(find . -name '*.go' -not -path './.git/*'); \
	if [ -z "$$files" ]; then echo "fmt: no Go files found"; exit 1; fi; \
	gofmt=$$($(GO) env GOROOT)/bin/gofmt || exit 1; \
	out=$$($$gofmt -l $$files </dev/null) || exit 1; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
## vet builds with the same flags as test ($(RACE)), so that the packages
## it compiles for its checks are the ones test reuses from the build
## cache: with an empty cache, compiling everything once instead of twice
## (the race build differs) saves about a minute per large package
vet:
	$(GO) vet $(RACE) $(PKGS)

## build32: the three binaries build for 32-bit Windows (386), which
## checks two things in one build (about a minute with an empty build
## cache, the cost of one more system): an int is 32 bits there (as on
## 32-bit ARM), so a constant or a flag that only fits 64 bits breaks;
## and Windows is not Unix, so code that uses Unix calls outside a file
## built only there breaks. The Lambda bootstrap runs on Linux only, but
## its code is the same everywhere.
build32:
	GOOS=windows GOARCH=386 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/octostore ./local ./cmd/octostore-lambda

## build-os: both servers build for the other systems they are meant to
## run on (OTHER_OS; only Linux runs the tests). About a minute per
## system with an empty build cache, so lint does not run it (build32
## covers Windows).
OTHER_OS ?= darwin/arm64 freebsd/amd64 windows/amd64 linux/arm
build-os:
	@for p in $(OTHER_OS); do \
	  echo "GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/octostore ./local"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/octostore ./local || exit 1; \
	done

## staticcheck: honnef.co/go/tools' checks (fetched through the module
## proxy on first use, about 4 minutes with empty caches, seconds after);
## not part of lint, so that CI's time stays where it is
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
.PHONY: staticcheck
staticcheck:
	$(GO) run $(STATICCHECK) $(PKGS)

## vulncheck: govulncheck against the Go vulnerability database, by default
## the copy in module golang.org/x/vulndb at VULNDB_VERSION, indexed into
## $TMPDIR once (so it needs only the module proxy; a newer VULNDB_VERSION
## knows newer reports); GOVULNDB=https://vuln.go.dev uses the live one
GOVULNCHECK   ?= golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
.PHONY: vulncheck
vulncheck:
	@db=$${GOVULNDB:-}; \
	if [ -z "$$db" ]; then \
	  out=$${TMPDIR:-/tmp}/octostore-vulndb-$(VULNDB_VERSION); \
	  if [ ! -f "$$out/index/db.json" ]; then \
	    src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	    [ -n "$$src" ] || { echo "vulncheck: cannot fetch golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; }; \
	    rm -rf "$$out.tmp" && (cd "$$src" && $(GO) run ./cmd/indexdb -vulns data/osv -out "$$out.tmp") && mv "$$out.tmp" "$$out" || exit 1; \
	  fi; \
	  db=file://$$out; \
	fi; \
	echo "vulncheck: database $$db"; \
	$(GO) run $(GOVULNCHECK) -db "$$db" $(PKGS)

## bench: Go benchmarks of the store and handler hot paths
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s $(PKGS)

## fuzz: every Go fuzz target in the module for FUZZTIME (30s) each; two
## targets run at a time with one fuzzing worker each (one per core), so
## every target gets its full FUZZTIME in half the wall time. A finding
## fails the run and is written under the package's testdata/fuzz
## (.ci/fuzz-one: Go 1.26's spurious end-of-fuzztime deadline, and Go's
## 10 s watchdog on a starved worker, are not findings).
## Each package's fuzz-instrumented build is made once first (-fuzz '^$'
## matches no target), so that two jobs never compile the same one at once:
## with an empty build cache that doubled the longest step of the run.
## FUZZMINIMIZETIME bounds the minimization of each new input (Go's default
## is 60 s, most of a 30 s run; see .ci/fuzz-one).
FUZZTIME ?= 30s
FUZZJOBS ?= 2
FUZZMINIMIZETIME ?= 2s
fuzz:
	@for p in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n 1 dirname | sort -u); do \
	  echo "== fuzz build $$p"; $(GO) test -run '^$$' -fuzz '^$$' "$$p" >/dev/null || exit 1; \
	done
	@grep -r --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\./||; s|/[^/]*:func | |' | sort | \
	GO=$(GO) FUZZMINIMIZETIME=$(FUZZMINIMIZETIME) xargs -n 2 -P $(FUZZJOBS) bash .ci/fuzz-one $(FUZZTIME)

## soak: the long linearizability histories and crash runs (OCTOSTORE_SOAK_DURATION per run, default 60s)
soak:
	OCTOSTORE_SOAK=1 $(GO) test -race -count=1 -timeout 60m -v -run . ./internal/lincheck ./internal/crashtest

## cover: statement coverage of every package by every test (the octostore
## binaries started as processes are not instrumented; cmd/octostore's serve
## also runs in-process); prints the total, writes coverage.html; fails if a
## test failed, after the report
cover:
	@status=0; $(GO) test -count=1 -timeout 20m -coverpkg=./... -coverprofile=coverage.out $(PKGS) || status=$$?; \
	$(GO) tool cover -func=coverage.out | tail -1; \
	$(GO) tool cover -html=coverage.out -o coverage.html; \
	echo "coverage.html written"; exit $$status

## build-OctoStoreFunction: called by `sam build` (BuildMethod: makefile)
## ARTIFACTS_DIR is sam build's; without it the recipe would write /bootstrap.
build-OctoStoreFunction:
	@[ -n "$(ARTIFACTS_DIR)" ] || { echo "build-OctoStoreFunction: ARTIFACTS_DIR is not set (sam build sets it; by hand: make build-OctoStoreFunction ARTIFACTS_DIR=bin/lambda)"; exit 2; }
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -tags lambda.norpc -o $(ARTIFACTS_DIR)/bootstrap ./cmd/octostore-lambda

clean:
	rm -rf bin coverage.out coverage.html

## bench-compare: the same load against etcd, raw Redis-Lua and OctoStore
## (SQLite and Redis), all on loopback; writes bench/results/ (see BENCHMARKS.md)
.PHONY: bench-compare
bench-compare:
	GO=$(GO) bash bench/compare.sh

## bench-growth: cycles/s and memory with 1,000 and with 1,000,000 held locks
## (SQLite and Redis); writes bench/results/growth.md (takes several minutes)
.PHONY: bench-growth
bench-growth:
	GO=$(GO) bash bench/growth.sh
