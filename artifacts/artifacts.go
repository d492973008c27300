// Package artifacts registers the curated distributions, each in its own
// package, and their end-of-life rules (policies.yaml), in one place.
package artifacts

import (
	_ "embed"
	"fmt"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/almalinux"
	"github.com/containerdisk/kubectl-containerdisk/artifacts/centosstream"
	"github.com/containerdisk/kubectl-containerdisk/artifacts/debian"
	"github.com/containerdisk/kubectl-containerdisk/artifacts/fedora"
	"github.com/containerdisk/kubectl-containerdisk/artifacts/opensuse"
	"github.com/containerdisk/kubectl-containerdisk/artifacts/ubuntu"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalogfile"
)

// Distros returns the curated distributions in the order they are listed.
func Distros() []catalog.Distro {
	return []catalog.Distro{
		fedora.New(),
		centosstream.New(),
		almalinux.New(),
		ubuntu.New(),
		debian.New(),
		opensuse.NewLeap(),
		opensuse.NewTumbleweed(),
		opensuse.NewMicroOS(),
	}
}

//go:embed policies.yaml
var policiesYAML []byte

// Policies returns the end-of-life rules of the curated distributions.
func Policies() map[string]catalog.Policy {
	f, err := catalogfile.ParseFile("artifacts/policies.yaml", policiesYAML)
	if err != nil {
		// The file is embedded and tested; this cannot happen in a build
		// that passed its tests.
		panic(fmt.Sprintf("embedded policies: %v", err))
	}
	return f.Policies
}

// Catalog returns the built-in catalog reading upstream through fetch.
func Catalog(fetch catalog.Fetcher) *catalog.Catalog {
	return &catalog.Catalog{Distros: Distros(), Policies: Policies(), Fetch: fetch}
}
