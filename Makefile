# Tollgate: `make run` starts everything, `make test` runs every test.
# Both bring up PostgreSQL and Redis when none is reachable (scripts/services.sh).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
STATE   := .tollgate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test bench bench-load bench-micro lint fmt vet migrate mock-llm services services-down clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tollgate ./cmd/tollgate

## run: the gateway (:4000), admin (:8080), jobs and mock-llm (:9090), with demo data
run: build $(STATE)/demo.env
	@eval "$$(scripts/services.sh up tollgate)" && set -a && source $(STATE)/demo.env && set +a && \
	  exec bin/tollgate all -demo

# Secrets for the local demo, made once and kept out of git. Values already
# in the environment win.
$(STATE)/demo.env:
	@mkdir -p $(STATE)
	@rnd() { head -c "$$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }; \
	{ echo "TOLLGATE_MASTER_KEY=\$${TOLLGATE_MASTER_KEY:-sk-master-$$(rnd 16)}"; \
	  echo "TOLLGATE_SECRET_KEY=\$${TOLLGATE_SECRET_KEY:-$$(rnd 32)}"; \
	  echo "TOLLGATE_DEMO_KEY=\$${TOLLGATE_DEMO_KEY:-sk-demo-$$(rnd 16)}"; } > $@
	@echo "wrote $@ (demo master key, encryption key and virtual key)"

## test: every test, against a real PostgreSQL and Redis
test:
	@eval "$$(scripts/services.sh up tollgate_test)" && \
	  TOLLGATE_CHROMIUM="$$(scripts/chromium.sh)" && export TOLLGATE_CHROMIUM && \
	  TOLLGATE_TEST_DATABASE_URL="$$DATABASE_URL" TOLLGATE_TEST_REDIS_URL="$$REDIS_URL" \
	  $(GO) test -race -count=1 ./...

## bench: the load test (bench-load) and the micro-benchmarks (bench-micro);
## see docs/performance.md
bench: bench-load bench-micro

## bench-load: the gateway's overhead side by side with calling mock-llm
## directly and with a bare reverse proxy, with full governance on; writes
## the tables into docs/performance.md (about 5 minutes).
## BENCH_FLAGS=-quick takes about 2; BENCH_FLAGS='-soak 10m' adds a soak.
BENCH_FLAGS ?=
bench-load: build
	@mkdir -p $(STATE)/bench
	@eval "$$(scripts/services.sh up tollgate_bench)" && \
	  $(GO) build -o bin/bench ./scripts/bench && \
	  bin/bench -tollgate bin/tollgate -out docs/performance.md -json $(STATE)/bench/load.json $(BENCH_FLAGS)

## bench-micro: Go benchmarks of the hot path's stages, the dashboard's
## queries (p95) over 1,000,000 seeded spend logs and the time to push
## 10,000 pending meter events; the output is kept in .tollgate/bench/micro.txt
## for `go tool benchstat old.txt new.txt`
bench-micro:
	@mkdir -p $(STATE)/bench
	@set -o pipefail && eval "$$(scripts/services.sh up tollgate_test)" && \
	  export TOLLGATE_TEST_DATABASE_URL="$$DATABASE_URL" TOLLGATE_TEST_REDIS_URL="$$REDIS_URL" && \
	  { $(GO) test -run '^$$' -bench . -benchmem -count 6 ./gateway/ ./gateway/limits/ ./gateway/openai/ && \
	    $(GO) test -run '^$$' -bench BenchmarkInsertSpendLogs -benchmem -count 6 ./store/ && \
	    $(GO) test -run '^$$' -bench BenchmarkDashboardQueries -benchtime 200x ./store/ && \
	    $(GO) test -run '^$$' -bench BenchmarkMeterPush10k -benchtime 3x ./jobs/ ; } | tee $(STATE)/bench/micro.txt

lint: fmt vet
fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
vet:
	$(GO) vet ./...

migrate: build
	@eval "$$(scripts/services.sh up tollgate)" && bin/tollgate migrate

mock-llm: build
	bin/tollgate mock-llm

services:
	@scripts/services.sh up tollgate >/dev/null && scripts/services.sh status
services-down:
	scripts/services.sh down

clean:
	rm -rf bin
