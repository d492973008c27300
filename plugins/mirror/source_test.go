package mirror_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitSourceCredentialsAndCertDir mirrors from a registry that speaks
// HTTPS with its own certificate authority and asks for a password: the
// unit's certDir and credentials (native and skopeo sync keys) are what
// reach it, and the password is printed nowhere.
func TestUnitSourceCredentialsAndCertDir(t *testing.T) {
	const user, password = "robot", "unit-pa55w0rd-s3cret"
	src := testregistry.NewWithOptions(t, testregistry.Options{TLS: true, Username: user, Password: password})
	tmp := t.TempDir()
	// The staging client logs in through a Docker config; the mirror runs
	// get one with an entry for another host only, so that nothing but
	// the unit's credentials can log in to the source.
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	staging := writeFile(t, tmp, "staging.json", fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, src.Host, basic))
	other := writeFile(t, tmp, "other.json", `{"auths": {"registry.example.com": {"auth": "dTpw"}}}`)

	disk := filepath.Join(tmp, "disk.qcow2")
	if err := testdisk.WriteQCOW2(disk, 4<<20, 7, false); err != nil {
		t.Fatal(err)
	}
	ref, err := target.Parse(src.Host + "/containerdisks/fedora")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := target.OpenRepository(ref, target.RemoteOptions{PlainHTTP: ptr(false), CAFile: src.CAFile, RegistryConfig: staging})
	if err != nil {
		t.Fatal(err)
	}
	res, err := containerdisk.Build(context.Background(), repo, []containerdisk.Disk{{Architecture: "amd64", Path: disk}}, containerdisk.Options{Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(context.Background(), res.Root, "42"); err != nil {
		t.Fatal(err)
	}

	// The certificate directory holds the CA as skopeo's does: *.crt.
	certDir := filepath.Join(tmp, "certs.d", src.Host)
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(src.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certDir, "ca.crt", string(ca))

	creds := fmt.Sprintf("{username: %s, password: %s}", user, password)
	native := func(keys ...string) string {
		return "units:\n- source: " + src.Host + "/containerdisks\n  images:\n  - {repository: fedora, tags: [\"42\"]}\n" + strings.Join(keys, "")
	}
	skopeo := func(keys ...string) string {
		return src.Host + "/containerdisks:\n  images:\n    fedora: [\"42\"]\n" + strings.Join(keys, "")
	}
	tests := []struct {
		name, config string
		want         string // in the output; "" for success
	}{
		{"native, both", native("  certDir: "+certDir+"\n", "  credentials: "+creds+"\n"), ""},
		{"skopeo, both", skopeo("  cert-dir: "+certDir+"\n", "  credentials: "+creds+"\n"), ""},
		{"no certDir", native("  credentials: " + creds + "\n"), "certificate signed by unknown authority"},
		{"no credentials", native("  certDir: " + certDir + "\n"), "credential not found"},
		{"wrong password", native("  certDir: "+certDir+"\n", "  credentials: {username: "+user+", password: wrong-"+password+"}\n"), "401"},
		{"missing certDir", native("  certDir: "+filepath.Join(tmp, "nowhere")+"\n", "  credentials: "+creds+"\n"), "reading certificate directory"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, t.TempDir(), "sync.yaml", tt.config)
			layout := filepath.Join(t.TempDir(), fmt.Sprintf("out%d", i))
			code, out := run(t.Context(), "-f", cfg, "--to", "oci:"+layout, "--plain-http=false", "--registry-config", other)
			if strings.Contains(out, password) {
				t.Errorf("the output shows the password:\n%s", out)
			}
			if tt.want == "" {
				if code != 0 || !strings.Contains(out, "Summary: 1 copied") {
					t.Fatalf("exit %d\n%s", code, out)
				}
				if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
					t.Fatalf("nothing was written to the layout: %v\n%s", err, out)
				}
				return
			}
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want 1 and an error saying %q:\n%s", code, tt.want, out)
			}
		})
	}
}
