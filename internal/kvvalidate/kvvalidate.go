// Package kvvalidate runs, for tests, KubeVirt's own admission of
// VirtualMachines: the binary hack/kvvalidate.sh builds from
// kubevirt.io/kubevirt (the VM and VMI webhooks of virt-api), so that a test
// can prove a VM it makes would be accepted by a real KubeVirt.
package kvvalidate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Script builds the validator and prints its path.
const Script = "hack/kvvalidate.sh"

// Binary returns the validator's path: $CONTAINERDISK_KVVALIDATE, else what
// hack/kvvalidate.sh builds (or finds in its cache, keyed by KubeVirt's
// version). A validator that cannot be had fails the test, saying how to
// build it.
func Binary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("CONTAINERDISK_KVVALIDATE"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			tb.Fatalf("CONTAINERDISK_KVVALIDATE: %v; build it with: export CONTAINERDISK_KVVALIDATE=$(%s)", err, Script)
		}
		return bin
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", Script)
	tb.Logf("CONTAINERDISK_KVVALIDATE is not set: running %s (it builds the validator the first time, in about 4 minutes)", Script)
	cmd := exec.Command(script)
	// The script runs the go command, which a test run may have been
	// started by without its directory in PATH.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(runtime.GOROOT(), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s: %v\n%s\nbuild the validator with: export CONTAINERDISK_KVVALIDATE=$(%s)", Script, err, &stderr, Script)
	}
	return strings.TrimSpace(string(out))
}

// Doc is a VirtualMachine manifest, YAML or JSON, with a name for the
// causes given for it.
type Doc struct {
	Name string
	Data []byte
}

// Check runs KubeVirt's admission on docs (reading instancetypes and
// preferences through kubeconfig, when given) and returns the causes it
// gives for rejecting each, by Doc name, and its exit status: 0 when every
// VM is admitted, 1 when some is not. A validator that cannot check the
// VMs (exit 2) fails the test.
func Check(tb testing.TB, bin, kubeconfig string, docs ...Doc) (map[string][]string, int) {
	tb.Helper()
	dir := tb.TempDir()
	var args []string
	if kubeconfig != "" {
		args = append(args, "--kubeconfig="+kubeconfig)
	}
	byFile := map[string]string{}
	for i, d := range docs {
		file := filepath.Join(dir, fmt.Sprintf("%04d.yaml", i))
		if err := os.WriteFile(file, d.Data, 0o644); err != nil {
			tb.Fatal(err)
		}
		byFile[file+"#1"] = d.Name
		args = append(args, file)
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Fatalf("running %s: %v", bin, err)
	}
	code := cmd.ProcessState.ExitCode()
	if code != 0 && code != 1 {
		tb.Fatalf("%s exited %d: the VMs could not be checked:\n%s", bin, code, &stderr)
	}
	causes := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		name := docs[0].Name
		if len(docs) > 1 {
			source, cause, ok := strings.Cut(line, ": ")
			if !ok || byFile[source] == "" {
				tb.Fatalf("%s printed %q, want SOURCE: FIELD: MESSAGE", bin, line)
			}
			name, line = byFile[source], cause
		}
		causes[name] = append(causes[name], line)
	}
	if code == 1 && len(causes) == 0 {
		tb.Fatalf("%s exited 1 without a cause:\n%s", bin, &stderr)
	}
	return causes, code
}
