# kubectl containerdisk: build, demo and test.

GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli.Version=$(VERSION) -X github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli.Commit=$(COMMIT)
PLUGINS  := gather build push pipeline verify mirror docs

.PHONY: all build demo test test-go release-test deps vet fmt bench clean docs-cli verify release krew

all: build

## build: the umbrella and the seven subcommand binaries in bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-containerdisk ./cmd/kubectl-containerdisk
	@for p in $(PLUGINS); do \
		echo "CGO_ENABLED=0 $(GO) build -o $(BIN)/kubectl-containerdisk-$$p ./plugins/$$p/kubectl-containerdisk-$$p"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-containerdisk-$$p ./plugins/$$p/kubectl-containerdisk-$$p || exit 1; \
	done

## deps: the Debian packages the demo and the tests use (qemu-img, skopeo,
## kubectl, QEMU, the boot disk's tools, etcd; see hack/deps.sh)
deps:
	@./hack/deps.sh

## demo: build a two-architecture containerdisk offline and publish it to an
## OCI layout and to a registry the demo starts itself
demo: deps build
	@./hack/demo.sh

## test: every test, the testscripts included, then the release test. The
## small bootable disk of verify --local, the test kube-apiserver, KubeVirt's
## admission validator, krew and the peer tools that read the OCI layouts
## (crane, oras, regctl) are built once and cached by version
## (hack/bootdisk.sh, hack/kube-apiserver.sh, hack/kvvalidate.sh,
## hack/krew.sh, hack/peers.sh; the first builds take minutes). The guest
## disks of the customize tests (hack/guestdisk.sh) take seconds. The
## libguestfs appliance runs under TCG unless LIBGUESTFS_BACKEND_SETTINGS is
## set: on this project's machines /dev/kvm opens but QEMU aborts under KVM.
test: deps vet verify test-go release-test

# -timeout: pkg/customize launches the libguestfs appliance 13 times under
# TCG, about 4 minutes on 2 idle cores and more than go test's default 10
# minutes on a loaded machine; every call has a time limit of its own.
test-go:
	CONTAINERDISK_BOOTDISK=$$(./hack/bootdisk.sh amd64) && \
	CONTAINERDISK_BOOTDISK_ARM64=$$(./hack/bootdisk.sh arm64) && \
	CONTAINERDISK_GUESTDISK=$$(./hack/guestdisk.sh amd64) && \
	CONTAINERDISK_GUESTDISK_ARM64=$$(./hack/guestdisk.sh arm64) && \
	KUBEBUILDER_ASSETS=$$(./hack/kube-apiserver.sh) && \
	CONTAINERDISK_KVVALIDATE=$$(./hack/kvvalidate.sh) && \
	CONTAINERDISK_PEERS=$$(./hack/peers.sh) && \
	LIBGUESTFS_BACKEND_SETTINGS=$${LIBGUESTFS_BACKEND_SETTINGS-force_tcg} && \
	export CONTAINERDISK_BOOTDISK CONTAINERDISK_BOOTDISK_ARM64 CONTAINERDISK_GUESTDISK CONTAINERDISK_GUESTDISK_ARM64 \
		KUBEBUILDER_ASSETS CONTAINERDISK_KVVALIDATE CONTAINERDISK_PEERS LIBGUESTFS_BACKEND_SETTINGS && \
	$(GO) test -timeout 30m ./...

## release-test: the release archives are byte-identical when built twice,
## hold the eight binaries and LICENSE, stripped and path-free, and the krew
## manifest passes krew's validator and installs offline (hack/release-test.sh)
release-test: deps
	./hack/release-test.sh

vet:
	$(GO) vet ./...

## docs-cli: the command reference in docs/cli, generated from the commands
## (docs cli asks each binary in bin/ for its own pages)
docs-cli: build
	$(BIN)/kubectl-containerdisk-docs cli --dir docs/cli

## release: archives of the eight binaries per platform and the krew
## manifest, in dist/VERSION (VERSION=vX.Y.Z)
release:
	./hack/release.sh $(VERSION)

## krew: validate the release's krew manifest with krew's own validator and
## install it offline with the real krew and kubectl
krew:
	./hack/krew.sh dist/$(VERSION)

## verify: fails when the committed command reference is stale
verify: docs-cli
	git diff --exit-code docs/cli
	test -z "$$(git status --porcelain docs/cli)"

fmt:
	gofmt -w $$(git ls-files '*.go')

## bench: the benchmarks, with their figures: the no-op re-push of a 3-arch
## index (target under 100 ms, no blob bytes) and build+push of a 1 GiB qcow2
## against go-containerregistry and oras (target 2x ggcr, RSS under 100 MiB);
## the catalog loop: a no-op run over ~40 entries (under 2 s, no layer read)
## and a cold push of 3 arches of a 1 GiB disk (MiB/s end to end); 4 local
## verifies at 1 and 2 workers (each boot under 30 s)
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 20x ./pkg/...
	bench/build-push.sh
	bench/catalog.sh
	CONTAINERDISK_BOOTDISK=$$(./hack/bootdisk.sh amd64) $(GO) test ./plugins/verify -run '^$$' -bench VerifyLocal4 -benchtime 1x

clean:
	rm -rf $(BIN) demo
