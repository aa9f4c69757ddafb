# mailwave: see README.md. `make demo` runs the main job, `make test` the tests.
SHELL := /bin/bash
GO ?= go
TEMPORAL_VERSION := v1.5.1
BIN := $(CURDIR)/bin
DATA ?= $(CURDIR)/data
TEMPORAL := $(BIN)/temporal
# The Temporal server itself (the production shape), at the version the
# pinned CLI's dev server embeds, with its SQL schema tool.
TEMPORAL_SERVER_VERSION := v1.29.1
TEMPORAL_SERVER := $(BIN)/temporal-server/server
WORKFLOWCHECK_VERSION := v0.6.0
STATICCHECK_VERSION := v0.8.2

.PHONY: all build temporal temporal-server dev-server demo stop production production-stop test bench-fleet bench-throttle bench-graph check vet staticcheck workflowcheck compose-check bench bench-copy bench-programme clean

all: build

build:
	$(GO) build -o $(BIN)/worker ./worker
	$(GO) build -o $(BIN)/starter ./starter
	$(GO) build -o $(BIN)/codecserver ./codecserver
	$(GO) build -o $(BIN)/bench ./bench
	$(GO) build -o $(BIN)/throttlebench ./bench/throttlebench
	$(GO) build -o $(BIN)/copybench ./bench/copybench
	$(GO) build -o $(BIN)/localfleet ./localfleet

# The pinned Temporal CLI (dev server + UI), built from the Go module proxy.
temporal: $(TEMPORAL)
$(TEMPORAL):
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

# The server is built here (temporal-server/, its own module): the stock
# server with mailwave's roles enforced by an authorizer (docs/access.md).
# The SQL tool is the stock one.
temporal-server: $(TEMPORAL_SERVER)
$(TEMPORAL_SERVER): $(wildcard temporal-server/*.go) temporal-server/go.mod temporal-server/go.sum $(wildcard internal/accesstoken/*.go) $(wildcard contract/*.go)
	cd temporal-server && $(GO) build -o $(BIN)/temporal-server/server .
	GOBIN=$(BIN)/temporal-server $(GO) install go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)

# The embedded default: a dev server on a SQLite file in WAL mode, with
# mailwave's search attributes (from the contract, through the starter), the
# UI on 8233. Runs in the foreground.
dev-server: build $(TEMPORAL)
	mkdir -p $(DATA)
	sas=$$($(BIN)/starter search-attributes) || exit 1; \
	$(TEMPORAL) server start-dev --db-filename $(DATA)/temporal.db \
		--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
		--ui-port 8233 --log-level warn \
		$$(printf -- '--search-attribute %s ' $$sas)

# The main job: dev server + worker in the background, then a few hundred
# simulated mailboxes on a compressed timeline. Leaves the server and worker
# running for the UI; `make stop` stops them.
demo: build $(TEMPORAL)
	DATA=$(DATA) TEMPORAL=$(TEMPORAL) BIN=$(BIN) scripts/demo.sh

stop:
	DATA=$(DATA) scripts/demo.sh stop

# Production on one machine: PostgreSQL, the Temporal server itself on it
# with mTLS, three workers and the routing host's worker, then a wave of N
# simulated mailboxes (PROD_N, default 2,000) through them. Leaves them running;
# `make production-stop` stops them.
PROD_N ?= 2000
production: build $(TEMPORAL_SERVER)
	DATA=$(DATA)/production BIN=$(BIN) N=$(PROD_N) scripts/production.sh

production-stop:
	DATA=$(DATA)/production scripts/production.sh stop

# The tests: static checks, then every test, with the race detector. The
# IMAP tests start their own Dovecot servers; here a missing Dovecot fails
# them rather than skipping them.
# The copier's fault matrix runs first, on its own, so that its size and
# outcome are printed (go test shows a passing package's output only with -v).
test: check $(TEMPORAL) $(TEMPORAL_SERVER)
	@mkdir -p $(BIN); log=$(BIN)/faultmatrix.log; \
	MAILWAVE_REQUIRE_DOVECOT=1 $(GO) test -race -count=1 -timeout 15m -v -run '^TestFaultMatrix$$' ./mail/imapcopy >$$log 2>&1 \
		|| { tail -300 $$log; grep '^fault matrix:' $$log; exit 1; }; \
	grep '^fault matrix:' $$log
	MAILWAVE_REQUIRE_DOVECOT=1 $(GO) test -race -count=1 -timeout 30m -skip '^TestFaultMatrix$$' ./...
	cd temporal-server && $(GO) test -count=1 ./...

check: vet staticcheck workflowcheck compose-check

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	cd temporal-server && $(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

workflowcheck:
	$(GO) run go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION) ./workflows/...

compose-check:
	@command -v docker-compose >/dev/null || { echo "docker-compose missing: apt-get install -y docker-compose"; exit 1; }
	docker-compose -f docker-compose.yml config -q

# The benchmark: a wave of N mailboxes through the whole lifecycle against N
# bare five-activity workflows, on one fresh dev server. N=22000 for a night.
N ?= 1000
CONCURRENCY ?= 100
bench: build $(TEMPORAL)
	$(BIN)/bench -n $(N) -concurrency $(CONCURRENCY) -temporal $(TEMPORAL) -worker $(BIN)/worker -starter $(BIN)/starter

# The fleet benchmark: a wave of N on WORKERS worker processes, on the dev
# server and on the Temporal server on PostgreSQL with mTLS, in one run.
WORKERS ?= 3
SHAPES ?= dev,postgres
WORKER_MEMORY_LIMIT ?=
# How two workers' adaptive rates share a target's hidden global limit: a
# real Dovecot behind the test kit's throttling proxy (bench/throttlebench).
LIMIT ?= 16
bench-throttle: build
	$(BIN)/throttlebench -limit $(LIMIT)

bench-fleet: build $(TEMPORAL) $(TEMPORAL_SERVER)
	$(BIN)/bench -fleet $(WORKERS) -shapes $(SHAPES) -worker-memory-limit '$(WORKER_MEMORY_LIMIT)' -n $(N) -concurrency $(CONCURRENCY) -temporal $(TEMPORAL) -worker $(BIN)/worker -starter $(BIN)/starter

# The copy benchmark: mailwave's IMAP copier against mbsync (isync) on the
# same generated mailbox, between Dovecot servers on loopback.
MESSAGES ?= 5000
MBYTES ?= 200
ROUNDS ?= 3
# Exchange Online through Graph: a wave of Dovecot mailboxes copied at once
# into the fake Graph, its limits' window scaled down from 5 minutes to 10 s
# (MAILBOXES=, GRAPH_MBYTES= per mailbox); prints name=value figures.
MAILBOXES ?= 8
GRAPH_MBYTES ?= 30
bench-graph:
	$(GO) run ./bench/graphbench -mailboxes $(MAILBOXES) -mbytes $(GRAPH_MBYTES)

# The programme's twin at 1:100: 21,000 simulated mailboxes, ten nights of
# 220 (weeknights) and 830 (weekends) in compressed time (a day every DAY,
# 3 minutes: 480 times, slow enough for a night's final work on this
# dev server), the first TWIN_LEAD_DAYS after the start (the nights within
# 14 days are told at the start; 14 tells every night at its T-14, in
# 24 days instead of 13), a target with Exchange Online's per-mailbox budget
# and a tenant limit, 1 % faults; pre-staged, then copying at T; prints
# name=value figures. About 40 minutes a variant.
DAY ?= 3m
TWIN_NIGHTS ?= 10
TWIN_LEAD_DAYS ?= 3
bench-programme: build $(TEMPORAL)
	$(GO) build -o $(BIN)/twin ./bench/twin
	$(BIN)/twin -day $(DAY) -nights $(TWIN_NIGHTS) -lead-days $(TWIN_LEAD_DAYS) -temporal $(TEMPORAL) -worker $(BIN)/worker

bench-copy: build
	$(BIN)/copybench -messages $(MESSAGES) -mbytes $(MBYTES) -rounds $(ROUNDS)

clean:
	rm -rf $(BIN)/worker $(BIN)/starter $(BIN)/codecserver $(BIN)/bench $(BIN)/copybench $(BIN)/localfleet $(BIN)/throttlebench $(BIN)/twin
