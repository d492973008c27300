package mirror

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNormalizePlatform(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "amd64", want: "linux/amd64"},
		{in: "x86_64", want: "linux/amd64"},
		{in: "aarch64", want: "linux/arm64"},
		{in: " Linux/ARM64 ", want: "linux/arm64"},
		{in: "linux/arm64/v8", want: "linux/arm64"},
		{in: "linux/amd64/v1", want: "linux/amd64"},
		{in: "linux/amd64/v3", want: "linux/amd64/v3"},
		{in: "linux/arm/7", want: "linux/arm/v7"},
		{in: "linux/s390x", want: "linux/s390x"},
		{in: "windows/amd64", want: "windows/amd64"},
		{in: "", err: `platform "": an empty part`},
		{in: "linux/", err: "an empty part"},
		{in: "linux/arm64/v8/x", err: "too many parts"},
		{in: "linux/amd46", err: `unknown architecture "amd46"; expected os/architecture[/variant] such as linux/amd64`},
		{in: "lnux/amd64", err: `unknown operating system "lnux"`},
	}
	for _, tt := range tests {
		got, err := NormalizePlatform(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NormalizePlatform(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePlatform(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// entry is an index entry for platform "os/arch[/variant]" ("" for none).
func entry(name, platform string) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name), Size: 100}
	if platform != "" {
		p := strings.Split(platform, "/")
		d.Platform = &ocispec.Platform{OS: p[0], Architecture: p[1]}
		if len(p) == 3 {
			d.Platform.Variant = p[2]
		}
	}
	return d
}

// attestation is a buildx attestation manifest of the entry named of.
func attestation(name, of string) ocispec.Descriptor {
	d := entry(name, "unknown/unknown")
	d.Annotations = map[string]string{annotationReferenceType: attestationManifest, annotationReferenceDigest: digest.FromString(of).String()}
	return d
}

func TestChooseManifests(t *testing.T) {
	index := []ocispec.Descriptor{
		entry("amd64", "linux/amd64"),
		entry("arm64", "linux/arm64"),
		entry("armv6", "linux/arm/v6"),
		entry("armv7", "linux/arm/v7"),
		entry("s390x", "linux/s390x"),
		entry("win", "windows/amd64"),
		entry("none", ""),
		attestation("att-amd64", "amd64"),
		attestation("att-arm64", "arm64"),
	}
	tests := []struct {
		chosen []string
		want   []string
	}{
		{[]string{"amd64"}, []string{"amd64", "att-amd64"}},
		{[]string{"windows/amd64"}, []string{"win"}},
		{[]string{"linux/arm64/v8"}, []string{"arm64", "att-arm64"}},
		{[]string{"linux/arm"}, []string{"armv6", "armv7"}},
		{[]string{"linux/arm/v7", "s390x"}, []string{"armv7", "s390x"}},
		{[]string{"ppc64le"}, nil},
	}
	names := map[digest.Digest]string{}
	for _, d := range index {
		for _, n := range []string{"amd64", "arm64", "armv6", "armv7", "s390x", "win", "none", "att-amd64", "att-arm64"} {
			if d.Digest == digest.FromString(n) {
				names[d.Digest] = n
			}
		}
	}
	for _, tt := range tests {
		chosen, err := parsePlatforms(tt.chosen)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range chooseManifests(index, chosen) {
			got = append(got, names[d.Digest])
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("choosing %q (-want +got):\n%s", tt.chosen, diff)
		}
	}
}

func TestRewriteIndex(t *testing.T) {
	src := digest.FromString("source index")
	amd, arm := entry("amd64", "linux/amd64"), entry("arm64", "linux/arm64")
	tests := []struct {
		name, raw string
		// want is the result, compared as JSON.
		want string
	}{
		{
			name: "fields kept, annotations added to",
			raw: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","x-unknown":{"b":1,"a":2},` +
				`"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + amd.Digest.String() + `","size":100,"platform":{"os":"linux","architecture":"amd64"}},` +
				`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + arm.Digest.String() + `","size":100,"platform":{"architecture":"arm64","os":"linux"},"x-entry":true}],` +
				`"annotations":{"org.opencontainers.image.version":"41"}}`,
			want: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","x-unknown":{"b":1,"a":2},` +
				`"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + arm.Digest.String() + `","size":100,"platform":{"architecture":"arm64","os":"linux"},"x-entry":true}],` +
				`"annotations":{"org.opencontainers.image.version":"41","` + AnnotationSourceDigest + `":"` + src.String() + `"}}`,
		},
		{
			name: "null annotations",
			raw:  `{"schemaVersion":2,"manifests":[{"digest":"` + arm.Digest.String() + `","size":100}],"annotations":null}`,
			want: `{"schemaVersion":2,"manifests":[{"digest":"` + arm.Digest.String() + `","size":100}],"annotations":{"` + AnnotationSourceDigest + `":"` + src.String() + `"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rewriteIndex([]byte(tt.raw), []ocispec.Descriptor{arm}, src)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// The same input always gives the same bytes: a sync that
			// finds the image rewritten before finds the same digest.
			again, _ := rewriteIndex([]byte(tt.raw), []ocispec.Descriptor{arm}, src)
			if string(again) != string(got) {
				t.Errorf("second rewrite differs:\n%s\n%s", got, again)
			}
		})
	}
	if _, err := rewriteIndex([]byte(`{"manifests":{}}`), nil, src); err == nil {
		t.Error("rewriteIndex of a malformed index: no error")
	}
}
