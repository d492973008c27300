package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
)

// TestHostFilesRefused: only the catalog file reaches the Jobs, so an entry
// whose customize commands read host files (copy-in…) is refused with a
// clear error instead of failing in every Job; the other entries still get
// their Jobs.
func TestHostFilesRefused(t *testing.T) {
	w := newWorld(t)
	dir := filepath.Dir(w.catalog)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "app.conf"), []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := catalogFile + `- name: conf
  base: https://tiny.example.com
  versions: ["1.0"]
  arches: [amd64]
  url: "{{.Base}}/{{.Version}}/tiny-{{.Arch}}.qcow2"
  checksum: {file: "{{.Base}}/{{.Version}}/SHA256SUMS"}
  customize:
    commands:
    - write /etc/motd:hello
    - copy-in files/app.conf:/etc
`
	if err := os.WriteFile(w.catalog, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(w.flags(), "--mirror", "conf="+w.site.URL()+"/tiny", "--print", "-n", "builds",
		"--image", "registry.example.com/kubectl-containerdisk:test", "--staging", "registry.example.com/staging")
	code, out, errOut := run(t.Context(), "pipeline", pipeline.NewCommand, args...)
	if code != cli.ExitFailed {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	want := `Failed conf:1.0: customize commands[1]: copy-in reads the host file "files/app.conf", which the Jobs do not have`
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr does not say %q:\n%s", want, errOut)
	}
	if n := strings.Count(out, "kind: Job\n"); n != 4 || strings.Contains(out, "/conf") {
		t.Errorf("%d Jobs printed, want tiny's 4 and none for conf:\n%s", n, out)
	}
}
