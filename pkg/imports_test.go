// Package pkg_test keeps the core free of command-line code: pkg/ is a
// library that programs other than the plugins can use.
package pkg_test

import (
	"os/exec"
	"strings"
	"testing"
)

func TestCoreImportsNoCLICode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/spf13/cobra",
		"github.com/spf13/pflag",
		"k8s.io/cli-runtime",
		"github.com/schollz/progressbar",
		"github.com/containerdisk/kubectl-containerdisk/plugins",
		"github.com/containerdisk/kubectl-containerdisk/cmd",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found only %d packages: %q", len(deps), deps)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("pkg/ depends on %s, which belongs to the command line", dep)
			}
		}
	}
}
