# The README's two commands are `make demo` and `make test`; CI runs
# .ci/run, which calls `make lint` and `make test`.
GO ?= go
# Go 1.27.3: the releases before it carry standard-library vulnerabilities
# that `make lint` (govulncheck) reports. The go command fetches this
# toolchain from the module proxy once; `make GOTOOLCHAIN=local` opts out.
export GOTOOLCHAIN = go1.27.3
export TF_ACC_TERRAFORM_PATH ?= /usr/local/bin/terraform

# Packages whose tests run with the race detector: everything that runs
# concurrently at run time.
RACE_PKGS = $(wildcard ./runtime ./provider ./internal)
RACE_PATTERNS = $(addsuffix /...,$(RACE_PKGS))

.PHONY: demo test bench lint deps chaos

## demo: the example pipelines end to end on a local world (two Kafka
## clusters and a MariaDB), with traffic, a live view and a final check that
## each datacenter holds the union of both.
demo: deps
	$(GO) run ./cmd/ferry validate pipelines
	$(GO) run ./cmd/ferry demo pipelines

## test: install what the tests need (kcat, MariaDB, PostgreSQL), then run them all.
## The 1,000,000-row load under writes runs without the race detector, which
## would slow it eightfold; the race run loads 100,000 rows. So does the
## mirror's isolation test, whose latency the race detector would distort.
test: export FERRY_REQUIRE_TOOLS = 1
test: deps
	$(GO) test -count=1 -timeout 14m $$($(GO) list ./... | grep -v -e /runtime -e /provider -e /internal)
	$(GO) test -count=1 -race -timeout 14m $(RACE_PATTERNS)
	FERRY_CDC_LONG=1 $(GO) test -count=1 -v -run 'TestSnapshotWhileWriting$$' -timeout 10m ./runtime/cdc/
	$(GO) test -count=1 -run 'TestIsolation$$' -timeout 5m ./runtime/mirror/

## chaos: the soak under faults (executors killed, Kafka errors and
## latency, MariaDB restarts, a datacenter paused), 5 minutes unless
## CHAOS=10m; it proves exactly once at the end. `make test` runs 1 minute.
CHAOS ?= 5m
chaos: deps
	FERRY_CHAOS_DURATION=$(CHAOS) $(GO) test -count=1 -v -run TestChaos -timeout 90m ./internal/chaos/

## bench: run the benchmarks and print their figures and ratios, one
## package at a time: they measure CPU and latency, which a second
## package's benchmark running beside them would distort.
bench: deps
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

## lint: formatting, vet and govulncheck (offline database: see .ci/govulncheck).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	./.ci/govulncheck

deps:
	@./.ci/deps
