# egress-tests-ext: build, test and verify. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/bin

# Loki server for the query tests: built from the module proxy at the version of the logcli
# client we import, so the client and the server never drift apart.
LOKI_VERSION := $(shell $(GO) list -m -f '{{.Version}}' github.com/grafana/loki/v3 2>/dev/null)
LOKI := $(BIN)/loki
# Prometheus server for the FlowMetrics source tests: pinned in hack/tools/prometheus.
PROMETHEUS := $(BIN)/prometheus
# NetObserv eBPF agent and flowlogs-pipeline for the live-capture lab: pinned in
# hack/tools/netobserv/go.mod (the one place their versions live). The agent is built from a
# copy of its module patched by hack/patchagent (the fentry workaround, see there).
NETOBSERV_TOOLS := hack/tools/netobserv
AGENT := $(BIN)/netobserv-ebpf-agent
FLP := $(BIN)/flowlogs-pipeline
AGENT_SRC := $(BIN)/.netobserv-agent-src
AGENT_BUILD := $(BIN)/.netobserv-build
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck

# OTE reads these through `info`.
OTE_VERSION_PKG := github.com/openshift-eng/openshift-tests-extension/pkg/version
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE := $(shell date -u +'%Y-%m-%dT%H:%M:%SZ')
GIT_TREE_STATE := $(shell if git diff --quiet HEAD 2>/dev/null; then echo clean; else echo dirty; fi)
LDFLAGS := -X '$(OTE_VERSION_PKG).CommitFromGit=$(GIT_COMMIT)' \
           -X '$(OTE_VERSION_PKG).BuildDate=$(BUILD_DATE)' \
           -X '$(OTE_VERSION_PKG).GitTreeState=$(GIT_TREE_STATE)'

METADATA := .openshift-tests-extension/openshift_payload_egress-tests-ext.json
FUZZTIME ?= 10s

.PHONY: all help build dist test fuzz bench verify lint update demo demo-replay lab lab-clean loki prometheus agent flp netobserv clean

all: build test verify

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## bin/egress-tests-ext
	# GO_COMPLIANCE_POLICY=exempt_all: a test binary, exempt from the payload's FIPS checks.
	GO_COMPLIANCE_POLICY=exempt_all $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/egress-tests-ext ./cmd/egress-tests-ext

dist: build ## egress-tests-ext.gz, as the payload image ships it
	gzip -9 -c $(BIN)/egress-tests-ext > $(BIN)/egress-tests-ext.gz

loki: $(LOKI) ## bin/loki, the real Loki server the query tests start on 127.0.0.1

$(LOKI): hack/tools/loki/go.mod hack/tools/loki/go.sum go.mod
	@test "$$(cd hack/tools/loki && $(GO) list -m -f '{{.Version}}' github.com/grafana/loki/v3)" = "$(LOKI_VERSION)" || \
	  { echo "hack/tools/loki pins another Loki than go.mod ($(LOKI_VERSION)): update hack/tools/loki/go.mod"; exit 1; }
	cd hack/tools/loki && $(GO) build -o $(LOKI) github.com/grafana/loki/v3/cmd/loki

prometheus: $(PROMETHEUS) ## bin/prometheus, the real Prometheus the FlowMetrics tests query on 127.0.0.1

# -s -w: a 100 MB binary either way; the symbols are of no use to the tests. No builtinassets
# tag: the web UI is absent, /api/v1 and /-/ready work.
$(PROMETHEUS): hack/tools/prometheus/go.mod hack/tools/prometheus/go.sum
	cd hack/tools/prometheus && $(GO) build -ldflags '-s -w' -o $(PROMETHEUS) github.com/prometheus/prometheus/cmd/prometheus

agent: $(AGENT) ## bin/netobserv-ebpf-agent, the real NetObserv eBPF agent (patched: hack/patchagent)

flp: $(FLP) ## bin/flowlogs-pipeline, the real flowlogs-pipeline

netobserv: $(AGENT) $(FLP) ## both NetObserv binaries of the live-capture lab

$(AGENT): $(NETOBSERV_TOOLS)/go.mod $(NETOBSERV_TOOLS)/go.sum hack/patchagent/main.go
	cd $(NETOBSERV_TOOLS) && $(GO) mod download github.com/netobserv/netobserv-ebpf-agent
	$(GO) run ./hack/patchagent -tools $(NETOBSERV_TOOLS) -out $(AGENT_SRC) -build $(AGENT_BUILD) \
	  -src "$$(cd $(NETOBSERV_TOOLS) && $(GO) list -m -f '{{.Dir}}' github.com/netobserv/netobserv-ebpf-agent)"
	cd $(AGENT_BUILD) && $(GO) build -o $(AGENT) github.com/netobserv/netobserv-ebpf-agent/cmd

$(FLP): $(NETOBSERV_TOOLS)/go.mod $(NETOBSERV_TOOLS)/go.sum
	cd $(NETOBSERV_TOOLS) && $(GO) build -o $(FLP) github.com/netobserv/flowlogs-pipeline/cmd/flowlogs-pipeline

test: $(LOKI) $(PROMETHEUS) $(AGENT) $(FLP) ## unit tests, real-Loki and real-Prometheus tests, live-capture lab tests (root), short fuzzing
	LOKI_BIN=$(LOKI) PROMETHEUS_BIN=$(PROMETHEUS) AGENT_BIN=$(AGENT) FLP_BIN=$(FLP) $(GO) test -count=1 ./...
	$(MAKE) fuzz

fuzz: ## short fuzz runs of the record decoder (and its one-pass path) and the baseline loader
	$(GO) test ./pkg/flow -run '^$$' -fuzz '^FuzzDecode' -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/flow -run '^$$' -fuzz '^FuzzFastWire' -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/baseline -run '^$$' -fuzz '^FuzzLoad' -fuzztime $(FUZZTIME)

bench: $(LOKI) $(PROMETHEUS) ## benchmarks with figures (BENCH_RECORDS: Loki sizes; BENCH_KEYS: FlowMetrics sizes)
	LOKI_BIN=$(LOKI) $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x ./pkg/source/lokiflows
	PROMETHEUS_BIN=$(PROMETHEUS) $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x ./pkg/source/promflows
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/flow ./pkg/matrix ./pkg/baseline ./pkg/firewall

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK) ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

verify: lint ## lint, go.mod tidiness, extension metadata freshness
	$(GO) mod tidy
	@if ! git diff --quiet -- go.mod go.sum; then git diff -- go.mod go.sum; \
	  echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; exit 1; fi
	$(MAKE) build
	@# `update` in a scratch copy: it refuses removed test names and rewrites the file.
	@tmp=$$(mktemp -d); cp -r .openshift-tests-extension $$tmp/; \
	  (cd $$tmp && $(BIN)/egress-tests-ext update >/dev/null); \
	  $(GO) run ./hack/stripcodelocations $$tmp/$(METADATA); \
	  if ! diff -u $(METADATA) $$tmp/$(METADATA); then \
	    echo "$(METADATA) is stale: run 'make update' and commit it"; exit 1; fi; rm -rf $$tmp

update: build ## regenerate the extension metadata (codeLocations stripped)
	$(BIN)/egress-tests-ext update
	$(GO) run ./hack/stripcodelocations $(METADATA)

# The live lab (internal/netlab): a scenario's cluster emulated in network namespaces,
# captured by the real NetObserv agent and flowlogs-pipeline into a real Loki. Needs root.
AGENT ?= $(BIN)/netobserv-ebpf-agent
FLP ?= $(BIN)/flowlogs-pipeline
SCENARIO ?=
OUT ?= _output/lab
BASELINE ?=
LAB_FLAGS = --agent $(AGENT) --flp $(FLP) --loki $(LOKI) --prometheus $(PROMETHEUS) $(if $(BASELINE),--baseline $(BASELINE))

lab: $(LOKI) $(PROMETHEUS) agent flp ## capture SCENARIO=FILE live into OUT (default _output/lab), as root, through Loki and FlowMetrics; BASELINE=DIR (default: embedded)
	@test -n "$(SCENARIO)" || { echo "make lab: give SCENARIO=FILE (e.g. testdata/demo/scenario.yaml)"; exit 2; }
	$(GO) run ./hack/lab --scenario $(SCENARIO) --out $(OUT) $(LAB_FLAGS)

lab-clean: ## remove what a crashed lab left behind (namespaces named etl*); not while a lab runs
	$(GO) run ./hack/lab --cleanup etl

demo: ## a live capture of testdata/demo/scenario.yaml; without root or BPF, the recording (demo-replay)
	@if $(GO) run ./hack/lab --check; then \
	  $(MAKE) --no-print-directory $(LOKI) $(PROMETHEUS) agent flp && \
	  $(GO) run ./hack/lab --demo --scenario testdata/demo/scenario.yaml --out _output/demo $(LAB_FLAGS); \
	else \
	  echo "demo: no live capture here (the reason is above): running the RECORDING instead (make demo-replay)"; echo; \
	  $(MAKE) --no-print-directory demo-replay; \
	fi

demo-replay: build $(LOKI) ## the whole pipeline on a recorded capture, no cluster and no root needed
	$(GO) run ./hack/demo --loki $(LOKI) --bin $(BIN)/egress-tests-ext

clean: ## remove build outputs
	rm -rf $(BIN)
