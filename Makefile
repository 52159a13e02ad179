# egressfw — build, lint, test, demo.
#   sudo make demo   runs egressfw in throwaway network namespaces and shows decisions
#   sudo make test   runs every test (unit, kernel, netns end-to-end)
GO       ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOBIN    := $(shell $(GO) env GOPATH)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/egressfw
# Debian packages the tests and the demo use; installed only when missing.
DEPS     := nftables iproute2 curl openssl ca-certificates python3 procps psmisc chromium docker.io busybox-static podman bind9-dnsutils

.PHONY: all build deps lint test test-unit test-race fuzz-seeds demo clean bench

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/egressfw

# deps installs what the tests need on a fresh Debian machine.
deps:
	@missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest

# MODULES are the Go modules of the repository: egressfw and the benchmark harness
# (bench/go.mod); ./... of one does not reach into the other.
MODULES  := . bench

lint: deps
	@bad=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$bad" ] || { echo "gofmt needed: $$bad"; exit 1; }
	@for m in $(MODULES); do \
		echo "vet, staticcheck: $$m"; \
		(cd $$m && $(GO) vet ./... && $(GOBIN)/staticcheck ./...) || exit 1; \
	done

test-unit:
	@for m in $(MODULES); do (cd $$m && $(GO) test -count=1 -timeout 20m ./...) || exit 1; done

# The packages on the data path also run under the race detector.
test-race:
	$(GO) test -count=1 -race -timeout 20m ./internal/sni/... ./internal/httphead/... ./internal/resolver/... ./internal/tproxy/... ./internal/h1relay/... ./internal/tenantdns/... ./internal/logfold/... ./internal/policy/... ./internal/proxy/... ./internal/admission/... ./internal/refuse/... ./internal/status/... ./internal/daemon/...

test: lint build test-unit test-race test-system

demo: deps build
	./scripts/demo.sh $(BIN)

# bench runs the benchmark harness (not part of test): egressfw vs direct, HAProxy and
# nginx on one netns topology; writes bench/BENCHMARKS.md. QUICK=1 for a ~2-minute smoke.
bench: build
	QUICK=$(QUICK) ./bench/run.sh

clean:
	rm -rf bin dist

.PHONY: deb test-system

# deb builds dist/egressfw_<version>_<arch>.deb with dpkg-deb (no debhelper;
# see packaging/deb/README.md) and prints its path.
deb:
	GOFLAGS="$(GOFLAGS) -buildmode=pie" $(MAKE) build VERSION=$$(packaging/deb/build.sh --version)
	packaging/deb/build.sh $(BIN) dist

# test-system builds the .deb, installs it in a Debian 12 container booted
# with systemd-nspawn (own network namespace) and checks the service end to
# end. Root only; the debootstrapped rootfs is cached in /var/cache/egressfw-test.
test-system:
	@missing=$$(for p in debootstrap systemd-container lintian; do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(GO) test -count=1 -tags system -timeout 30m -v ./test/system/
