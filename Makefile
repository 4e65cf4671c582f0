# The README's two commands are `make demo` and `make test`; CI runs
# .ci/run, which calls `make lint` and `make test`.
GO ?= go
export TF_ACC_TERRAFORM_PATH ?= /usr/local/bin/terraform

# Packages whose tests run with the race detector: everything that runs
# concurrently at run time.
RACE_PKGS = $(wildcard ./runtime ./provider)
RACE_PATTERNS = $(addsuffix /...,$(RACE_PKGS))

.PHONY: demo test bench lint deps

## demo: the example pipelines end to end on a local world (two Kafka
## clusters and a MariaDB), with traffic, a live view and a final check that
## each datacenter holds the union of both.
demo: deps
	$(GO) run ./cmd/ferry validate pipelines
	$(GO) run ./cmd/ferry demo pipelines

## test: install what the tests need (kcat, MariaDB, PostgreSQL), then run them all.
test: deps
	$(GO) test -count=1 -timeout 14m $$($(GO) list ./... | grep -v -e /runtime -e /provider)
	$(GO) test -count=1 -race -timeout 14m $(RACE_PATTERNS)

## bench: run the benchmarks and print their figures and ratios.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

## lint: formatting and vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

deps:
	@./.ci/deps
