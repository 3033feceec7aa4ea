# offsetdb: see README.md. Every target runs on a fresh machine with Go installed.

GO        ?= go
BIN       ?= bin
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build test test-short offsets offsets-experiments verify lint fmt demo generate check-generated

all: build

## build: compile the CLIs into ./bin
build:
	$(GO) build -o $(BIN)/ ./offsetgen ./tracer

## demo: three chain services (three Go releases, one stripped) under one tracer, requests through them, printed as trace trees (needs root)
demo:
	./scripts/demo.sh

## generate: rebuild the eBPF objects with clang through bpf2go (needs clang, llvm, libbpf-dev)
generate:
	$(GO) generate ./tracer/...

## check-generated: fail when the committed eBPF objects differ from a fresh make generate
check-generated: generate
	@git diff --exit-code --stat -- tracer bpf || { echo "eBPF objects are stale: run make generate and commit"; exit 1; }

## test: the full test suite (real toolchains from the module proxy, real probes, real uprobes as root)
test:
	@echo "make test: every package's tests, in parallel: real Go toolchains and modules from the module proxy (cached in ~/.cache/offsetdb-test), real PostgreSQL/MariaDB/Redis, an OpenTelemetry Collector and uprobes (root); each package prints ok/FAIL and its time as it ends. A few minutes with warm caches; the first run downloads and builds for 30 min or more. Quick unit tests without downloads: make test-short"
	@start=$$(date +%s); $(GO) test -count=1 -timeout 30m ./...; rc=$$?; \
	echo "make test: $$( [ $$rc = 0 ] && echo passed || echo FAILED ) in $$(( $$(date +%s) - start )) s"; exit $$rc

## test-short: unit tests only, no downloads
test-short:
	$(GO) test -short -count=1 ./...

## offsets: regenerate data/ for every Go release since 1.12 and every version of the modules
## with a field set (incremental; the first full run takes hours), then verify it
comma := ,
empty :=
space := $(empty) $(empty)
FIELDSET_MODULES := $(subst _,/,$(basename $(notdir $(filter-out fieldset/std.fields,$(wildcard fieldset/*.fields)))))
# Modules the proxy serves only as pseudo-versions (no tagged release): generated with --pre,
# which selects pseudo-versions (and, for the other modules, would add their pre-releases).
PRE_MODULES ?= google.golang.org/genproto/googleapis/rpc
MODULES ?= $(subst $(space),$(comma),$(filter-out $(PRE_MODULES),$(FIELDSET_MODULES)))
offsets:
	$(GO) run ./offsetgen generate --out data
	$(GO) run ./offsetgen generate --out data --compare-go --workers 2 --modules $(MODULES)
	$(GO) run ./offsetgen generate --out data --compare-go --workers 2 --pre --modules $(subst $(space),$(comma),$(strip $(PRE_MODULES)))
	$(GO) run ./offsetgen verify --data data
	$(GO) run ./offsetgen coverage --data data --readme README.md

## offsets-experiments: the GOEXPERIMENT shards of data/ (README "GOEXPERIMENT" table): the newest
## release of each line where each experiment exists, amd64 and arm64 (boringcrypto needs gcc and
## gcc-aarch64-linux-gnu); about 1.5 minutes per release and GOARCH on two cores
offsets-experiments:
	$(GO) run ./offsetgen generate --out data --goexperiment boringcrypto --versions 1.19.13,1.20.14,1.21.13,1.22.12,1.23.12,1.24.13,1.25.14,1.26.11,1.27.4
	$(GO) run ./offsetgen generate --out data --goexperiment noswissmap --versions 1.24.13,1.25.14
	$(GO) run ./offsetgen generate --out data --goexperiment jsonv2 --versions 1.25.14,1.26.11
	$(GO) run ./offsetgen generate --out data --goexperiment greenteagc --versions 1.25.14
	$(GO) run ./offsetgen generate --out data --goexperiment nogreenteagc --versions 1.26.11,1.27.4
	$(GO) run ./offsetgen verify --data data
	$(GO) run ./offsetgen coverage --data data --readme README.md

## verify: check data/ (schema, ordering, ranges, checksums)
verify:
	$(GO) run ./offsetgen verify --data data

## lint: formatting, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

.PHONY: bench
## bench: overhead and cost figures against same-run baselines, into bench/results.{md,json} and README (root; ~10 min on 2 cores)
bench:
	$(GO) run ./bench $(BENCHFLAGS)
