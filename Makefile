# Build tools are pinned in tools/go.mod and run with `go tool`, so a fresh machine gets the
# same versions with no manual step.
SHELL := /bin/bash
TOOL := go tool -modfile=tools/go.mod
GO_PACKAGES := ./...

.PHONY: all build dev test test-short generate checkgenerate lint bench chaos clean

all: build

build:
	go build -o bin/ferry ./cmd/ferry

## dev: run ferry on the embedded default (Temporal + UI, sandbox, worker, API)
dev:
	go run ./cmd/ferry dev

## test: every test, including the integration tests that boot the embedded stack
test:
	go test -count=1 -timeout 20m $(GO_PACKAGES)

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

lint:
	$(TOOL) buf lint
	go vet $(GO_PACKAGES)
	$(TOOL) workflowcheck -config workflowcheck.config.yaml ./workflows/...
	$(TOOL) staticcheck $(GO_PACKAGES)

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
