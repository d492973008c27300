package testupstream

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// opensuseRollingDirs are the Tumbleweed appliances directories by
// architecture, as download.opensuse.org lays them out.
var opensuseRollingDirs = map[string]string{
	"x86_64":  "tumbleweed/appliances",
	"aarch64": "ports/aarch64/tumbleweed/appliances",
	"s390x":   "ports/zsystems/tumbleweed/appliances",
}

// PublishLeap publishes build ("16.35") of the Minimal-VM Cloud image of
// openSUSE Leap version ("15.6", "16.0") for arches (x86_64/amd64,
// aarch64/arm64, s390x; amd64 and arm64 when none are given) under
// opensuse-leap/distribution/leap/<version>/appliances/:
//
//   - the build-stamped image, e.g.
//     openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2
//     (16.0 and later drop "openSUSE-"; s390x writes "-s390x-Cloud"), the
//     disk Disk("opensuse-leap/<version>/<build>/<arch>"), arch as openSUSE
//     writes it;
//   - the same disk under its unversioned alias,
//     openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2;
//   - a .sha256 next to each, with one "HEX  NAME" line (a single space
//     for 15.x, as upstream writes them), and a .sha256.asc;
//   - the KVM-and-Xen and VMware images' checksum files and a .packages
//     list, which have no image.
//
// The files of the arch's earlier builds are removed, as upstream
// publishes only the current one.
func (s *Site) PublishLeap(version, build string, arches ...string) error {
	if len(arches) == 0 {
		arches = []string{"amd64", "arm64"}
	}
	ups, err := redhatArches(arches)
	if err != nil {
		return err
	}
	majorText, _, _ := strings.Cut(version, ".")
	major, err := strconv.Atoi(majorText)
	if err != nil {
		return fmt.Errorf("leap version %q: expected N.M such as 15.6", version)
	}
	dir := "opensuse-leap/distribution/leap/" + version + "/appliances"
	format := "%s  %s\n"
	if major < 16 {
		format = "%s %s\n"
	}
	for _, a := range ups {
		prefix := "openSUSE-Leap-" + version + "-Minimal-VM." + a
		if major >= 16 {
			prefix = "Leap-" + version + "-Minimal-VM." + a
		}
		if err := s.removeOther(dir, func(name string) bool {
			return strings.HasPrefix(name, prefix+"-") && strings.Contains(name, "-Build") && !strings.Contains(name, "-Build"+build+".")
		}); err != nil {
			return err
		}
		cloud := "Cloud"
		if a == "s390x" {
			cloud = "s390x-Cloud"
		}
		stamped := func(profile, ext string) string {
			return fmt.Sprintf("%s-%s.0-%s-Build%s.%s", prefix, version, profile, build, ext)
		}
		alias := func(profile, ext string) string { return fmt.Sprintf("%s-%s.%s", prefix, profile, ext) }

		sum, _, err := s.WriteDisk(dir+"/"+stamped(cloud, "qcow2"), "opensuse-leap/"+version+"/"+build+"/"+a)
		if err != nil {
			return err
		}
		if _, _, err := s.WriteDisk(dir+"/"+alias(cloud, "qcow2"), "opensuse-leap/"+version+"/"+build+"/"+a); err != nil {
			return err
		}
		files := map[string]string{stamped(cloud, "qcow2"): sum, alias(cloud, "qcow2"): sum}
		for _, d := range [][2]string{{"kvm-and-xen", "qcow2"}, {"VMware", "vmdk"}} {
			fake := fakeSum(stamped(d[0], d[1]))
			files[stamped(d[0], d[1])], files[alias(d[0], d[1])] = fake, fake
		}
		for name, sum := range files {
			if err := s.WriteFile(dir+"/"+name+".sha256", fmt.Appendf(nil, format, sum, name)); err != nil {
				return err
			}
		}
		sig := "-----BEGIN PGP SIGNATURE-----\n\nnot a signature\n-----END PGP SIGNATURE-----\n"
		if err := s.WriteFile(dir+"/"+alias(cloud, "qcow2")+".sha256.asc", []byte(sig)); err != nil {
			return err
		}
		if err := s.WriteFile(dir+"/"+strings.TrimSuffix(stamped(cloud, "qcow2"), ".qcow2")+".packages", []byte("kernel-default|6.4.0|1|x86_64\n")); err != nil {
			return err
		}
	}
	return nil
}

// PublishTumbleweed publishes snapshot ("20240629") of the Minimal-VM
// Cloud image of openSUSE Tumbleweed for arches (x86_64/amd64,
// aarch64/arm64, s390x; all three when none are given) in
// opensuse-tumbleweed/<dir>, dir being tumbleweed/appliances,
// ports/aarch64/tumbleweed/appliances or
// ports/zsystems/tumbleweed/appliances:
//
//   - openSUSE-Tumbleweed-Minimal-VM.<arch>-1.0.0-Cloud-Snapshot<date>.qcow2
//     (s390x: ...s390x-16.0.0-s390x-Cloud-Snapshot<date>.qcow2, as upstream
//     names it), the disk Disk("opensuse-tumbleweed/<snapshot>/<arch>"),
//     arch as openSUSE writes it, and the same disk under its alias
//     (openSUSE-Tumbleweed-Minimal-VM.<arch>-Cloud.qcow2);
//   - a new SHA256SUMS, sorted by name, listing only this snapshot: the
//     image and its alias, the other Tumbleweed images (KVM-and-Xen,
//     sdboot, VMware, Hyper-V, Vagrant) and their aliases, and the
//     MicroOS 16.0.0 images of the same snapshot, as the real shared file
//     does; those have no files.
//
// The arch's earlier snapshot files are removed, as upstream keeps only the
// current snapshot.
func (s *Site) PublishTumbleweed(snapshot string, arches ...string) error {
	return s.publishRolling("opensuse-tumbleweed", "opensuse-tumbleweed/"+snapshot, snapshot, arches, func(a string) (own, other []opensuseImage) {
		return tumbleweedImages(a, snapshot), microOSImages(a, "16.0.0", snapshot)
	})
}

// PublishMicroOS publishes snapshot ("20240629") of the OpenStack Cloud
// image of openSUSE MicroOS version ("16.0.0") for arches (all three when
// none are given) in opensuse-microos/<dir>, the directories of
// PublishTumbleweed:
//
//   - openSUSE-MicroOS.<arch>-<version>-OpenStack-Cloud-Snapshot<date>.qcow2
//     (s390x: ...-s390x-Cloud-...), the disk
//     Disk("opensuse-microos/<version>/<snapshot>/<arch>"), and the same
//     disk under its alias (openSUSE-MicroOS.<arch>-OpenStack-Cloud.qcow2);
//   - a new SHA256SUMS listing only this snapshot: the image and its alias,
//     the other MicroOS images (ContainerHost variants, DigitalOcean,
//     KVM-and-Xen, VMware, SelfInstall) and their aliases, and the
//     Tumbleweed images of the same snapshot; those have no files.
//
// The arch's earlier snapshot files are removed.
func (s *Site) PublishMicroOS(version, snapshot string, arches ...string) error {
	return s.publishRolling("opensuse-microos", "opensuse-microos/"+version+"/"+snapshot, snapshot, arches, func(a string) (own, other []opensuseImage) {
		return microOSImages(a, version, snapshot), tumbleweedImages(a, snapshot)
	})
}

// opensuseImage is one image of a snapshot, listed in SHA256SUMS under its
// name and its alias.
type opensuseImage struct {
	name, alias string
	// disk is set on the image whose file is published; the others are
	// only listed.
	disk bool
}

func tumbleweedImages(arch, snapshot string) []opensuseImage {
	const p = "openSUSE-Tumbleweed-Minimal-VM."
	img := func(kiwi, profile, ext string, disk bool) opensuseImage {
		return opensuseImage{
			name:  fmt.Sprintf("%s%s-%s-%s-Snapshot%s.%s", p, arch, kiwi, profile, snapshot, ext),
			alias: fmt.Sprintf("%s%s-%s.%s", p, arch, profile, ext),
			disk:  disk,
		}
	}
	if arch == "s390x" {
		return []opensuseImage{
			img("16.0.0", "s390x-Cloud", "qcow2", true),
			{
				name:  fmt.Sprintf("openSUSE-Tumbleweed-Minimal-Image.s390x-16.0.0-s390x-dasd-Snapshot%s.raw.xz", snapshot),
				alias: "openSUSE-Tumbleweed-Minimal-Image.s390x-s390x-dasd.raw.xz",
			},
		}
	}
	return []opensuseImage{
		img("1.0.0", "Cloud", "qcow2", true),
		img("1.0.0", "kvm-and-xen", "qcow2", false),
		img("1.0.0", "kvm-and-xen-sdboot", "qcow2", false),
		img("1.0.0", "VMware", "vmdk", false),
		img("1.0.0", "MS-HyperV", "vhdx.xz", false),
		{
			name:  fmt.Sprintf("Tumbleweed.%s-1.0-libvirt-Snapshot%s.vagrant.libvirt.box", arch, snapshot),
			alias: fmt.Sprintf("Tumbleweed.%s-libvirt.box", arch),
		},
	}
}

func microOSImages(arch, version, snapshot string) []opensuseImage {
	const p = "openSUSE-MicroOS."
	img := func(profile, ext string, disk bool) opensuseImage {
		return opensuseImage{
			name:  fmt.Sprintf("%s%s-%s-%s-Snapshot%s.%s", p, arch, version, profile, snapshot, ext),
			alias: fmt.Sprintf("%s%s-%s.%s", p, arch, profile, ext),
			disk:  disk,
		}
	}
	if arch == "s390x" {
		return []opensuseImage{img("s390x-Cloud", "qcow2", true), img("s390x-dasd", "raw.xz", false)}
	}
	return []opensuseImage{
		img("OpenStack-Cloud", "qcow2", true),
		img("ContainerHost-OpenStack-Cloud", "qcow2", false),
		img("ContainerHost-kvm-and-xen", "qcow2", false),
		img("DigitalOcean-Cloud", "qcow2", false),
		img("kvm-and-xen", "qcow2", false),
		img("kvm-and-xen-sdboot", "qcow2", false),
		img("VMware", "vmdk", false),
		img("SelfInstall", "raw.xz", false),
	}
}

// publishRolling writes the images of one snapshot under root and a new
// SHA256SUMS per architecture directory; the disk of arch is
// Disk(idPrefix + "/" + arch).
func (s *Site) publishRolling(root, idPrefix, snapshot string, arches []string, images func(arch string) (own, other []opensuseImage)) error {
	ups, err := redhatArches(arches)
	if err != nil {
		return err
	}
	for _, a := range ups {
		rel, ok := opensuseRollingDirs[a]
		if !ok {
			return fmt.Errorf("architecture %q: openSUSE Tumbleweed is published for x86_64, aarch64 and s390x", a)
		}
		dir := root + "/" + rel
		if err := s.removeOther(dir, func(name string) bool {
			return strings.Contains(name, "-Snapshot") && !strings.Contains(name, "-Snapshot"+snapshot+".")
		}); err != nil {
			return err
		}
		own, other := images(a)
		sums := map[string]string{}
		for _, img := range own {
			sum := fakeSum(img.name)
			if img.disk {
				id := idPrefix + "/" + a
				if sum, _, err = s.WriteDisk(dir+"/"+img.name, id); err != nil {
					return err
				}
				if _, _, err := s.WriteDisk(dir+"/"+img.alias, id); err != nil {
					return err
				}
			}
			sums[img.name], sums[img.alias] = sum, sum
		}
		for _, img := range other {
			sums[img.name], sums[img.alias] = fakeSum(img.name), fakeSum(img.name)
		}
		if err := s.WriteFile(dir+"/SHA256SUMS", gnuSums(sums, "  ")); err != nil {
			return err
		}
	}
	return nil
}

// removeOther removes the files of dir (relative to Dir) whose names stale
// reports, as a site does when it replaces a build.
func (s *Site) removeOther(dir string, stale func(name string) bool) error {
	entries, err := os.ReadDir(filepath.Join(s.Dir, filepath.FromSlash(dir)))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && stale(e.Name()) {
			if err := os.Remove(filepath.Join(s.Dir, filepath.FromSlash(dir), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
