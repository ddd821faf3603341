# Tollgate: `make run` starts everything, `make test` runs every test.
# Both bring up PostgreSQL and Redis when none is reachable (scripts/services.sh).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
STATE   := .tollgate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test bench lint fmt vet migrate mock-llm services services-down clean

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

## bench: the gateway's added latency over calling mock-llm directly, the
## dashboard's queries (p95) over 1,000,000 seeded spend logs, and the time
## to push 10,000 pending meter events to a local billing sink
bench:
	@eval "$$(scripts/services.sh up tollgate_test)" && \
	  TOLLGATE_TEST_DATABASE_URL="$$DATABASE_URL" TOLLGATE_TEST_REDIS_URL="$$REDIS_URL" \
	  $(GO) test -run '^$$' -bench . -benchmem -count 5 ./gateway/ && \
	  $(GO) test -run '^$$' -bench BenchmarkDashboardQueries -benchtime 200x ./store/ && \
	  $(GO) test -run '^$$' -bench BenchmarkMeterPush10k -benchtime 3x ./jobs/

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
