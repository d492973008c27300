package testupstream

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// ubuntuCodenames are the codename directories cloud-images.ubuntu.com has
// beside the version directories, as aliases of them.
var ubuntuCodenames = map[string]string{
	"20.04": "focal", "22.04": "jammy", "22.10": "kinetic", "23.04": "lunar", "23.10": "mantic",
	"24.04": "noble", "24.10": "oracular", "25.04": "plucky", "25.10": "questing", "26.04": "resolute",
}

var ubuntuBuildDir = regexp.MustCompile(`^release-([0-9]{8}(?:\.[0-9]+)?)$`)

// PublishUbuntu publishes Ubuntu build serial ("20240423", "20240423.1") of
// version ("24.04") for arches (amd64, arm64, s390x when none are given; any
// other is written too, so that tests can publish what KubeVirt does not
// run), as cloud-images.ubuntu.com/releases does: the
// ubuntu-<version>-server-cloudimg-<arch>.img disks and a SHA256SUMS (GNU,
// "*" binary marks, sorted by name) go into ubuntu/<version>/release-<serial>/.
// SHA256SUMS also lists the build's other images, which have no files: the
// -disk-kvm.img, -lxd.tar.xz, .tar.gz, .vmdk… of each arch, and the armhf
// and ppc64el images. Earlier builds stay; ubuntu/<version>/release/ is
// then made a copy of the newest build directory (by serial, not the one
// published last). The top directory also holds the version's codename
// directory (an alias of the version, noble/ for 24.04, holding its
// checksums), streams/ and
// server/, as upstream's does.
func (s *Site) PublishUbuntu(version, serial string, arches ...string) error {
	if version == "" || !ubuntuBuildDir.MatchString("release-"+serial) {
		return fmt.Errorf("publish ubuntu %q %q: expected a version such as 24.04 and a serial such as 20240423 or 20240423.1", version, serial)
	}
	arches, err := debianArches(arches, "amd64", "arm64", "s390x")
	if err != nil {
		return err
	}
	root := "ubuntu/" + version
	dir := root + "/release-" + serial
	sums := map[string]string{}
	for _, a := range arches {
		name := ubuntuImage(version, a, ".img")
		sum, _, err := s.WriteDisk(dir+"/"+name, "ubuntu/"+version+"/"+serial+"/"+a)
		if err != nil {
			return err
		}
		sums[name] = sum
		for _, suffix := range []string{"-disk-kvm.img", "-lxd.tar.xz", "-root.tar.xz", ".squashfs", ".tar.gz", ".vmdk", ".ova"} {
			n := ubuntuImage(version, a, suffix)
			sums[n] = fakeSum(dir + "/" + n)
		}
	}
	for _, a := range []string{"armhf", "ppc64el"} {
		for _, suffix := range []string{".img", "-lxd.tar.xz", ".tar.gz"} {
			if n := ubuntuImage(version, a, suffix); sums[n] == "" {
				sums[n] = fakeSum(dir + "/" + n)
			}
		}
	}
	sumsFile := gnuSums(sums, " *")
	if err := s.WriteFile(dir+"/SHA256SUMS", sumsFile); err != nil {
		return err
	}
	if err := s.WriteFile(dir+"/unpacked/build-info.txt", []byte("serial="+serial+"\n")); err != nil {
		return err
	}
	if err := s.updateUbuntuRelease(root); err != nil {
		return err
	}
	if err := s.WriteFile("ubuntu/streams/v1/index.json", []byte(`{"format": "index:1.0", "index": {}}`+"\n")); err != nil {
		return err
	}
	if err := s.mkdirs("ubuntu/server"); err != nil {
		return err
	}
	if codename := ubuntuCodenames[version]; codename != "" {
		// Upstream's is a symlink to the version, which http.FileServer
		// would list as a file; a copy of the checksums lists as upstream's.
		if err := s.WriteFile("ubuntu/"+codename+"/release/SHA256SUMS", sumsFile); err != nil {
			return err
		}
	}
	return nil
}

// updateUbuntuRelease makes root/release/ a copy of the newest
// root/release-<serial>/, as upstream's release symlink is.
func (s *Site) updateUbuntuRelease(root string) error {
	full := filepath.Join(s.Dir, filepath.FromSlash(root))
	entries, err := os.ReadDir(full)
	if err != nil {
		return err
	}
	var newest string
	for _, e := range entries {
		if m := ubuntuBuildDir.FindStringSubmatch(e.Name()); m != nil && e.IsDir() {
			if newest == "" || catalog.CompareVersions(m[1], strings.TrimPrefix(newest, "release-")) > 0 {
				newest = e.Name()
			}
		}
	}
	tmp := filepath.Join(full, ".release.tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.CopyFS(tmp, os.DirFS(filepath.Join(full, newest))); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(full, "release")); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(full, "release"))
}

// ubuntuImage names the server cloud image of version for arch, with the
// suffix of its kind (".img", "-disk-kvm.img", ".tar.gz"…).
func ubuntuImage(version, arch, suffix string) string {
	return "ubuntu-" + version + "-server-cloudimg-" + arch + suffix
}
