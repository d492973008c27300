package docs

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

func rel(name, version, arch string, stable, latest bool) catalog.Release {
	return catalog.Release{Name: name, Version: version, Arch: arch, Stable: stable, Latest: latest,
		Metadata: catalog.Metadata{Description: name + " image", DefaultUser: "user", Instancetype: "u1.small", Preference: name,
			UserData: catalog.DefaultUserData("user")}}
}

func TestImagesPicksNewestStableVersion(t *testing.T) {
	tests := []struct {
		name        string
		rels        []catalog.Release
		wantVersion string
		wantArchs   string
	}{
		{"latest marked", []catalog.Release{rel("f", "42", "arm64", true, true), rel("f", "42", "amd64", true, true), rel("f", "41", "amd64", true, false)}, "42", "amd64,arm64"},
		{"not the last written", []catalog.Release{rel("f", "10", "amd64", true, false), rel("f", "9", "amd64", true, false)}, "10", "amd64"},
		// The order is the catalog's (catalog.CompareVersions), which picks
		// latest the same way: numbers count inside words too.
		{"numbers inside words", []catalog.Release{rel("c", "9.9-stream", "amd64", true, false), rel("c", "9.10-stream", "amd64", true, false)}, "9.10-stream", "amd64"},
		{"a long build number", []catalog.Release{rel("t", "20241203123456789012", "amd64", true, false), rel("t", "9", "amd64", true, false)}, "20241203123456789012", "amd64"},
		{"betas are skipped", []catalog.Release{rel("f", "43", "amd64", false, false), rel("f", "42", "s390x", true, false)}, "42", "s390x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images := Images(tt.rels)
			if len(images) != 1 {
				t.Fatalf("%d images, want 1", len(images))
			}
			if images[0].Version != tt.wantVersion || strings.Join(images[0].Architectures, ",") != tt.wantArchs {
				t.Errorf("got %s %v, want %s %s", images[0].Version, images[0].Architectures, tt.wantVersion, tt.wantArchs)
			}
		})
	}
}

func TestImagesLeavesOutNoDocs(t *testing.T) {
	hidden := rel("hidden", "1", "amd64", true, true)
	hidden.Metadata.NoDocs = true
	images := Images([]catalog.Release{hidden, rel("shown", "2", "amd64", true, true)})
	if len(images) != 1 || images[0].Name != "shown" {
		t.Errorf("images = %+v, want only shown", images)
	}
}

func TestGenerate(t *testing.T) {
	rels := []catalog.Release{rel("zeta", "1", "amd64", true, true), rel("alpha", "2", "arm64", true, true), rel("alpha", "2", "amd64", true, true)}
	pages, err := Generate(rels, Options{Registry: "registry.example.com/disks/"})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range pages {
		files = append(files, p.File)
	}
	if got := strings.Join(files, ","); got != "alpha.md,zeta.md,README.md" {
		t.Fatalf("files = %s", got)
	}
	alpha := string(pages[0].Content)
	for _, want := range []string{
		"--volume-containerdisk=src:registry.example.com/disks/alpha:2",
		"--volume-import=type:registry,url:docker://registry.example.com/disks/alpha:2,size:10Gi",
		"| Architectures | amd64, arm64 |",
	} {
		if !strings.Contains(alpha, want) {
			t.Errorf("alpha.md lacks %q:\n%s", want, alpha)
		}
	}
	index := string(pages[2].Content)
	if !strings.Contains(index, "| [alpha](alpha.md) | 2 | ✓ | ✓ | – |\n") || !strings.Contains(index, "| [zeta](zeta.md) | 1 | ✓ | – | – |\n") {
		t.Errorf("index:\n%s", index)
	}
	again, _ := Generate(rels, Options{Registry: "registry.example.com/disks"})
	for i := range pages {
		if !bytes.Equal(pages[i].Content, again[i].Content) {
			t.Errorf("%s differs between runs", pages[i].File)
		}
	}
}

func TestVirtualMachineParses(t *testing.T) {
	img := Images([]catalog.Release{rel("fedora", "42", "amd64", true, true)})[0]
	img.Metadata.UserData = "#cloud-config\nruncmd:\n  - echo 'a: b' \"quoted\"\n"
	data, err := VirtualMachine(img, Options{Registry: DefaultRegistry})
	if err != nil {
		t.Fatal(err)
	}
	var vm struct {
		Kind string
		Spec struct {
			Instancetype struct{ Name string }
			Preference   struct{ Name string }
			Template     struct {
				Spec struct {
					Volumes []struct {
						ContainerDisk    *struct{ Image string }    `json:"containerDisk"`
						CloudInitNoCloud *struct{ UserData string } `json:"cloudInitNoCloud"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &vm); err != nil {
		t.Fatal(err)
	}
	vols := vm.Spec.Template.Spec.Volumes
	if vm.Kind != "VirtualMachine" || vm.Spec.Instancetype.Name != "u1.small" || vm.Spec.Preference.Name != "fedora" || len(vols) != 2 ||
		vols[0].ContainerDisk.Image != "quay.io/containerdisks/fedora:42" || vols[1].CloudInitNoCloud.UserData != img.Metadata.UserData {
		t.Errorf("manifest:\n%s", data)
	}
}
