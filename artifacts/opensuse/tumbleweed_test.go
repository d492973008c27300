package opensuse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

const (
	twAmd64 = "tumbleweed/appliances/"
	twArm64 = "ports/aarch64/tumbleweed/appliances/"
	twS390x = "ports/zsystems/tumbleweed/appliances/"
)

func tumbleweedWants(snapshot string) []want {
	return []want{
		{"1.0.0", "amd64", twAmd64 + "openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot" + snapshot + ".qcow2", snapshot, "1.0.0-" + snapshot, "opensuse-tumbleweed/" + snapshot + "/x86_64"},
		{"1.0.0", "arm64", twArm64 + "openSUSE-Tumbleweed-Minimal-VM.aarch64-1.0.0-Cloud-Snapshot" + snapshot + ".qcow2", snapshot, "1.0.0-" + snapshot, "opensuse-tumbleweed/" + snapshot + "/aarch64"},
		{"1.0.0", "s390x", twS390x + "openSUSE-Tumbleweed-Minimal-VM.s390x-16.0.0-s390x-Cloud-Snapshot" + snapshot + ".qcow2", snapshot, "1.0.0-" + snapshot, "opensuse-tumbleweed/" + snapshot + "/s390x"},
	}
}

func TestTumbleweedReleases(t *testing.T) {
	site := testupstream.Serve(t)
	must(t, site.PublishTumbleweed("20240627"))
	must(t, site.PublishTumbleweed("20240629"))
	// MicroOS has its own tree in tests, but upstream's SHA256SUMS is one.
	must(t, site.PublishMicroOS("16.0.0", "20240629"))
	d := NewTumbleweed()
	rels := releases(t, site, d)
	checkReleases(t, site, d, rels, tumbleweedWants("20240629"))

	m := rels[0].Metadata
	if m.DefaultUser != "opensuse" || m.Instancetype != "u1.medium" || m.Preference != "opensuse.tumbleweed" ||
		m.UserData != catalog.DefaultUserData("opensuse") || !strings.Contains(m.Description, "Tumbleweed") {
		t.Errorf("metadata %+v", m)
	}

	// A snapshot published between two runs is picked up by the next,
	// on the architectures it was published for.
	must(t, site.PublishTumbleweed("20240701", "amd64"))
	next := tumbleweedWants("20240629")
	next[0] = tumbleweedWants("20240701")[0]
	checkReleases(t, site, d, releases(t, site, d), next)
}

func TestMicroOSReleases(t *testing.T) {
	site := testupstream.Serve(t)
	must(t, site.PublishMicroOS("16.0.0", "20240627"))
	must(t, site.PublishMicroOS("16.0.0", "20240629"))
	must(t, site.PublishTumbleweed("20240629"))
	d := NewMicroOS()
	rels := releases(t, site, d)
	checkReleases(t, site, d, rels, []want{
		{"16.0.0", "amd64", twAmd64 + "openSUSE-MicroOS.x86_64-16.0.0-OpenStack-Cloud-Snapshot20240629.qcow2", "20240629", "16.0.0-20240629", "opensuse-microos/16.0.0/20240629/x86_64"},
		{"16.0.0", "arm64", twArm64 + "openSUSE-MicroOS.aarch64-16.0.0-OpenStack-Cloud-Snapshot20240629.qcow2", "20240629", "16.0.0-20240629", "opensuse-microos/16.0.0/20240629/aarch64"},
		{"16.0.0", "s390x", twS390x + "openSUSE-MicroOS.s390x-16.0.0-s390x-Cloud-Snapshot20240629.qcow2", "20240629", "16.0.0-20240629", "opensuse-microos/16.0.0/20240629/s390x"},
	})
	m := rels[0].Metadata
	if m.DefaultUser != "root" || m.Preference != "opensuse.tumbleweed" || !strings.Contains(m.UserData, "name: root") {
		t.Errorf("metadata %+v", m)
	}

	// A new MicroOS version is a new version of the image.
	must(t, site.PublishMicroOS("16.1.0", "20240701", "amd64"))
	rels = releases(t, site, d)
	checkReleases(t, site, d, rels[2:], []want{
		{"16.1.0", "amd64", twAmd64 + "openSUSE-MicroOS.x86_64-16.1.0-OpenStack-Cloud-Snapshot20240701.qcow2", "20240701", "16.1.0-20240701", "opensuse-microos/16.1.0/20240701/x86_64"},
	})
}

// TestRollingPick checks which line of a SHA256SUMS is the image.
func TestRollingPick(t *testing.T) {
	lines := func(names ...string) string {
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s  %s\n", sha256hex([]byte(n)), n)
		}
		return b.String()
	}
	tests := []struct {
		name string
		d    catalog.Distro
		sums string
		want string // "": no release
	}{{
		name: "tumbleweed among its other images and aliases",
		d:    NewTumbleweed(),
		sums: lines(
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240629.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-kvm-and-xen-Snapshot20240630.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-kvm-and-xen-sdboot-Snapshot20240630.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-VMware-Snapshot20240630.vmdk",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-Cloud.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.aarch64-1.0.0-Cloud-Snapshot20240630.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240629.qcow2.sha256",
			"Tumbleweed.x86_64-1.0-libvirt-Snapshot20240630.vagrant.libvirt.box",
		),
		want: "openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240629.qcow2",
	}, {
		name: "tumbleweed, a mirror still listing the previous snapshot",
		d:    NewTumbleweed(),
		sums: lines(
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240701.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240629.qcow2",
		),
		want: "openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240701.qcow2",
	}, {
		name: "microos among ContainerHost and DigitalOcean",
		d:    NewMicroOS(),
		sums: lines(
			"openSUSE-MicroOS.x86_64-16.0.0-ContainerHost-OpenStack-Cloud-Snapshot20240630.qcow2",
			"openSUSE-MicroOS.x86_64-16.0.0-DigitalOcean-Cloud-Snapshot20240630.qcow2",
			"openSUSE-MicroOS.x86_64-16.0.0-OpenStack-Cloud-Snapshot20240629.qcow2",
			"openSUSE-MicroOS.x86_64-OpenStack-Cloud.qcow2",
			"openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240630.qcow2",
		),
		want: "openSUSE-MicroOS.x86_64-16.0.0-OpenStack-Cloud-Snapshot20240629.qcow2",
	}, {
		name: "microos not built for the architecture",
		d:    NewMicroOS(),
		sums: lines("openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240630.qcow2"),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			must(t, site.PublishTumbleweed("20240101", "arm64"))
			must(t, site.PublishMicroOS("16.0.0", "20240101", "arm64"))
			must(t, site.WriteFile(tc.d.Name()+"/"+twAmd64+"SHA256SUMS", []byte(tc.sums)))
			rels := releases(t, site, tc.d)
			if tc.want == "" {
				if len(rels) != 1 || rels[0].Arch != "arm64" {
					t.Fatalf("releases %+v, want arm64 only", rels)
				}
				return
			}
			if len(rels) != 2 || rels[0].Arch != "amd64" {
				t.Fatalf("releases %+v, want amd64 and arm64", rels)
			}
			r := rels[0]
			wantURL := site.URL() + "/" + tc.d.Name() + "/" + twAmd64 + tc.want
			wantSum := containerdisk.Checksum{Algorithm: "sha256", Hex: sha256hex([]byte(tc.want))}
			if r.Err != nil || r.URL != wantURL || r.Checksum != wantSum {
				t.Errorf("release %s %v %v, want %s %v", r.URL, r.Checksum, r.Err, wantURL, wantSum)
			}
		})
	}
}

func TestRollingProblems(t *testing.T) {
	const amd64Sums = "opensuse-tumbleweed/" + twAmd64 + "SHA256SUMS"
	tests := []struct {
		name  string
		d     catalog.Distro
		setup func(t *testing.T, site *testupstream.Site)
		wants []want // the good releases
		// failed is the version and arch of the failed release, and parts
		// of its error.
		failed []string
	}{{
		name: "ports not built",
		d:    NewTumbleweed(),
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.PublishTumbleweed("20240629", "amd64"))
		},
		wants: tumbleweedWants("20240629")[:1],
	}, {
		name: "cloud image missing from the listing",
		d:    NewTumbleweed(),
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.PublishTumbleweed("20240629"))
			data, err := site.ReadFile(amd64Sums)
			must(t, err)
			var kept []string
			for line := range strings.Lines(string(data)) {
				if !strings.Contains(line, "-Cloud-Snapshot") || strings.Contains(line, "MicroOS") {
					kept = append(kept, line)
				}
			}
			must(t, site.WriteFile(amd64Sums, []byte(strings.Join(kept, ""))))
		},
		wants:  tumbleweedWants("20240629")[1:],
		failed: []string{"1.0.0", "amd64", amd64Sums, "openSUSE-Tumbleweed-Minimal-VM.x86_64-<version>-Cloud-Snapshot<date>.qcow2"},
	}, {
		name: "listing unreadable",
		d:    NewTumbleweed(),
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.PublishTumbleweed("20240629"))
			site.Fail(amd64Sums, 502, 10)
		},
		wants:  tumbleweedWants("20240629")[1:],
		failed: []string{"1.0.0", "amd64", amd64Sums, "502"},
	}, {
		name: "microos listing unreadable joins the version of the others",
		d:    NewMicroOS(),
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.PublishMicroOS("16.0.0", "20240629", "amd64", "s390x"))
			site.Fail("opensuse-microos/"+twArm64+"SHA256SUMS", 500, 10)
		},
		wants: []want{
			{"16.0.0", "amd64", twAmd64 + "openSUSE-MicroOS.x86_64-16.0.0-OpenStack-Cloud-Snapshot20240629.qcow2", "20240629", "16.0.0-20240629", "opensuse-microos/16.0.0/20240629/x86_64"},
			{"16.0.0", "s390x", twS390x + "openSUSE-MicroOS.s390x-16.0.0-s390x-Cloud-Snapshot20240629.qcow2", "20240629", "16.0.0-20240629", "opensuse-microos/16.0.0/20240629/s390x"},
		},
		failed: []string{"16.0.0", "arm64", twArm64 + "SHA256SUMS", "500"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			tc.setup(t, site)
			rels := releases(t, site, tc.d)
			var good []catalog.Release
			var failed *catalog.Release
			for _, r := range rels {
				if r.Err != nil {
					failed = &r
					continue
				}
				good = append(good, r)
			}
			checkReleases(t, site, tc.d, good, tc.wants)
			switch {
			case tc.failed == nil && failed != nil:
				t.Errorf("%s/%s failed: %v", failed.Version, failed.Arch, failed.Err)
			case tc.failed != nil && failed == nil:
				t.Errorf("no release failed, want %s/%s to", tc.failed[0], tc.failed[1])
			case tc.failed != nil:
				checkErr(t, *failed, tc.failed[0], tc.failed[1], tc.failed[2:]...)
			}
			// Failed or not, every architecture is listed in order.
			for i := 1; i < len(rels); i++ {
				if archOrder(rels[i-1].Arch) >= archOrder(rels[i].Arch) {
					t.Errorf("releases out of order: %s before %s", rels[i-1].Arch, rels[i].Arch)
				}
			}
		})
	}
}

func archOrder(a string) int { return strings.Index("amd64 arm64 s390x", a) }

func TestRollingUnreadable(t *testing.T) {
	for _, d := range []catalog.Distro{NewTumbleweed(), NewMicroOS()} {
		t.Run(d.Name(), func(t *testing.T) {
			site := testupstream.Serve(t)
			// Nothing published.
			testupstream.CheckFails(t, d, site.Env(d, june2025), "no SHA256SUMS", nil)
			// The other product's SHA256SUMS lists nothing of this one.
			if d.Name() == "opensuse-microos" {
				must(t, site.WriteFile(d.Name()+"/"+twAmd64+"SHA256SUMS", []byte(strings.Repeat("ab", 32)+"  openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240629.qcow2\n")))
				testupstream.CheckFails(t, d, site.Env(d, june2025), "no openSUSE-MicroOS images", nil)
			}
			site.Fail(d.Name()+"/"+twAmd64+"SHA256SUMS", 500, 10)
			// x86_64 failing, ports absent.
			testupstream.CheckFails(t, d, site.Env(d, june2025), "500", nil)
		})
	}
}

// TestSharedSums checks that the fake site writes the SHA256SUMS that
// Tumbleweed and MicroOS share upstream: each product's tree lists the
// other's images too.
func TestSharedSums(t *testing.T) {
	site := testupstream.Serve(t)
	must(t, site.PublishTumbleweed("20240629", "amd64"))
	must(t, site.PublishMicroOS("16.0.0", "20240629", "amd64"))
	for _, tc := range []struct{ path, other string }{
		{"opensuse-tumbleweed/" + twAmd64 + "SHA256SUMS", "openSUSE-MicroOS.x86_64-16.0.0-OpenStack-Cloud-Snapshot20240629.qcow2"},
		{"opensuse-microos/" + twAmd64 + "SHA256SUMS", "openSUSE-Tumbleweed-Minimal-VM.x86_64-1.0.0-Cloud-Snapshot20240629.qcow2"},
	} {
		data, err := site.ReadFile(tc.path)
		must(t, err)
		if !strings.Contains(string(data), "  "+tc.other+"\n") {
			t.Errorf("%s does not list %s:\n%s", tc.path, tc.other, data)
		}
	}
}
