# Build tools are pinned in tools/go.mod and run with `go tool`, so a fresh machine gets the
# same versions with no manual step.
SHELL := /bin/bash
TOOL := go tool -modfile=tools/go.mod
GO_PACKAGES := ./...

.PHONY: all build dev test test-postgres test-short test-ui generate checkgenerate lint bench chaos clean

all: build

# VERSION is what `ferry version` prints: the nearest tag, else the commit (dirty marked).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	go build -ldflags "-X github.com/ferryhq/ferry/internal/cli.Version=$(VERSION)" -o bin/ferry ./cmd/ferry

## dev: run ferry on the embedded default (Temporal + UI, sandbox, worker, API)
dev:
	go run ./cmd/ferry dev

## test: every test, including the integration tests that boot the embedded stack
test:
	go test -count=1 -timeout 20m $(GO_PACKAGES)

## test-ui: ferry dev's Temporal Web UI driven in headless Chromium (Debian's chromium;
## FERRY_CHROMIUM for another path); screenshots go to bin/test-ui (FERRY_UI_ARTIFACTS).
## Under CI=true a missing Chromium fails the test instead of skipping it.
test-ui:
	go test -tags uitest -count=1 -timeout 8m -v -run 'TestTemporalUI|TestGameDayReportInChromium' ./e2e/ui

## test-postgres: ferry against a Temporal cluster on PostgreSQL (127.0.0.1:5432): setup,
## one server and two worker processes, a DNS shift and a region move with a worker killed.
## Part of `make test` too; this runs it alone. The first run builds the pinned Temporal
## server into ~/.cache/ferry (about 2 minutes on 2 cores with a warm build cache).
test-postgres:
	go test -count=1 -timeout 15m -v -run TestPostgresCluster ./cmd/ferry

## test-short: unit tests only
test-short:
	go test -short -count=1 $(GO_PACKAGES)

generate:
	$(TOOL) buf generate

## checkgenerate: fails when gen/ is stale against proto/
checkgenerate: generate
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		echo "gen/ is stale: run 'make generate' and commit the result"; \
		git status --porcelain -- gen; exit 1; fi

## lint also runs govulncheck against the Go vulnerability database, read offline: the
## golang.org/x/vulndb module (its OSV files, pinned in tools/go.mod; bump with
## `go get -modfile=tools/go.mod golang.org/x/vulndb@latest`) comes through the module
## proxy, its own indexdb command lays it out as the v1 database, and govulncheck reads that
## with -db file://. Reachable findings listed in VULN_KNOWN (each explained in
## docs/security.md) are printed but pass; any other one fails the target.
VULNDB_DIR := $(CURDIR)/bin/vulndb
VULN_KNOWN := GO-2025-4272 GO-2026-4273 GO-2026-4394 GO-2026-4762 GO-2026-4945 GO-2026-5004 \
	GO-2026-5208 GO-2026-5578 GO-2026-5766 GO-2026-6061 GO-2026-6348 GO-2026-6505 GO-2026-6599 \
	GO-2026-6600 GO-2026-6603 GO-2026-6605 GO-2026-6607 GO-2026-6608 GO-2026-6609 GO-2026-6610 \
	GO-2026-6611 GO-2026-6612 GO-2026-6613 GO-2026-6617 GO-2026-6629 GO-2026-6809 GO-2026-6865 \
	GO-2026-6872 GO-2026-6873 GO-2026-6875 GO-2026-6876 GO-2026-6877 GO-2026-6879 GO-2026-6881 \
	GO-2026-6883

lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt'ed (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	$(TOOL) buf lint
	go vet $(GO_PACKAGES)
	$(TOOL) workflowcheck -config workflowcheck.config.yaml ./workflows/...
	$(TOOL) staticcheck $(GO_PACKAGES)
	go mod download -modfile=tools/go.mod golang.org/x/vulndb
	rm -rf $(VULNDB_DIR) && mkdir -p $(VULNDB_DIR)
	$(TOOL) indexdb -vulns "$$(go list -modfile=tools/go.mod -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $(VULNDB_DIR)
	@# Exit 3 means "vulnerabilities found": judged below against VULN_KNOWN.
	$(TOOL) govulncheck -db file://$(VULNDB_DIR) $(GO_PACKAGES) > bin/govulncheck.txt || [ $$? -eq 3 ]
	@found=$$(grep -oE '^Vulnerability #[0-9]+: GO-[0-9]+-[0-9]+' bin/govulncheck.txt | awk '{print $$3}' | sort -u); \
	new=$$(comm -23 <(echo "$$found") <(echo $(VULN_KNOWN) | tr ' ' '\n' | sort -u) | grep . || true); \
	echo "govulncheck: $$(echo "$$found" | grep -c .) reachable findings, all known but: $${new:-none} (report: bin/govulncheck.txt)"; \
	if [ -n "$$new" ]; then grep -A12 -F -e "$$(echo "$$new" | head -1)" bin/govulncheck.txt; \
		echo "new reachable vulnerabilities: $$new; upgrade the module, or explain it in docs/security.md and add it to VULN_KNOWN"; exit 1; fi

## bench: benchmarks print numbers; tests assert behaviour. Every benchmark logs its results
## as table rows (testenv.BenchRow); the run ends with them gathered into one table, each
## value next to the target the issues set for it.
BENCH_OUT ?= bench.out
bench:
	set -o pipefail; go test -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m $(GO_PACKAGES) 2>&1 | tee $(BENCH_OUT)
	@echo; echo "=== make bench: every result, with the targets from the issues"; echo
	@echo "| measure | value | target | verdict |"; echo "| --- | --- | --- | --- |"
	@grep -hE '_test\.go:[0-9]+: \| ' $(BENCH_OUT) | sed -E 's/^ *[a-z_]+_test\.go:[0-9]+: //'

clean:
	rm -rf bin

## chaos: N region-move rehearsals with killed workers, a Temporal restart and injected faults
N ?= 20
chaos:
	go test -tags chaos -count=1 -timeout 20m -run TestChaos -v ./internal/chaos -args -n=$(N)
