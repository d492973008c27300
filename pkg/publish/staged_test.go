package publish

import (
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// TestStagedDigest: a Job's termination message is its word on what it
// pushed, read as hostile input: the digest comes back only from a record
// of the release, with a valid digest, naming the release's own staging
// repository, in a message no longer than the kubelet keeps.
func TestStagedDigest(t *testing.T) {
	staging, err := target.Parse("registry.example.com:5000/staging")
	if err != nil {
		t.Fatal(err)
	}
	r := catalog.Release{Name: "fedora", Version: "42", Arch: "arm64"}
	d := "sha256:" + strings.Repeat("ab", 32)
	line := func(name, version, ref, digest string) string {
		return `{"reference":"` + ref + `","digest":"` + digest + `","name":"` + name + `","version":"` + version + `"}` + "\n"
	}
	good := line("fedora", "42", "registry.example.com:5000/staging/arm64/fedora:42", d)
	for _, tc := range []struct {
		name, msg, err string
	}{
		{"record", good, ""},
		{"by digest", line("fedora", "42", "registry.example.com:5000/staging/arm64/fedora@"+d, d), ""},
		{"among others", line("fedora", "41", "registry.example.com:5000/staging/arm64/fedora:41", d) + "\n" + good, ""},
		{"empty", "", "no record of fedora:42"},
		{"garbage", "not json", `line 1 is not a JSON record`},
		{"garbage after", good + "{", `line 2 is not a JSON record`},
		{"oversized", good + strings.Repeat(" ", MaxStagedMessage), "expected at most 4096"},
		{"other version", line("fedora", "41", "registry.example.com:5000/staging/arm64/fedora:41", d), "no record of fedora:42"},
		{"twice", good + good, "two records of fedora:42"},
		{"bad digest", line("fedora", "42", "registry.example.com:5000/staging/arm64/fedora:42", "sha256:abc"), `"digest" is "sha256:abc"`},
		{"no digest", line("fedora", "42", "registry.example.com:5000/staging/arm64/fedora:42", ""), `"digest" is ""`},
		{"other arch", line("fedora", "42", "registry.example.com:5000/staging/amd64/fedora:42", d), "expected registry.example.com:5000/staging/arm64/fedora:42"},
		{"other registry", line("fedora", "42", "evil.example.com/staging/arm64/fedora:42", d), "expected registry.example.com:5000/staging/arm64/fedora:42"},
		{"other tag", line("fedora", "42", "registry.example.com:5000/staging/arm64/fedora:latest", d), "expected registry.example.com:5000/staging/arm64/fedora:42"},
		{"other digest", line("fedora", "42", "registry.example.com:5000/staging/arm64/fedora@sha256:"+strings.Repeat("cd", 32), d), "expected registry"},
		{"layout", line("fedora", "42", "oci:/tmp/staging/arm64/fedora:42", d), "expected registry"},
		{"not a reference", line("fedora", "42", "::", d), "invalid reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StagedDigest(tc.msg, staging, r)
			if tc.err == "" {
				if err != nil || got.String() != "registry.example.com:5000/staging/arm64/fedora@"+d {
					t.Errorf("StagedDigest = %s, %v; want the staging repository at %s", got, err, d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("StagedDigest = %s, %v; want an error saying %q", got, err, tc.err)
			}
		})
	}
}
