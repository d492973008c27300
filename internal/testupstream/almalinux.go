package testupstream

import (
	"fmt"
)

// PublishAlmaLinux publishes the GenericCloud image of AlmaLinux minor
// ("9.6") dated date ("20250522", or "20250528.0" as 10 writes it) under
// major ("9") for arches (x86_64/amd64, aarch64/arm64, s390x, or others
// such as ppc64le; all three of KubeVirt's when none are given): it writes
// almalinux/<major>/cloud/<arch>/images/
// AlmaLinux-<major>-GenericCloud-<minor>-<date>.<arch>.qcow2 and rewrites
// that directory's CHECKSUM (GNU format, sorted by name) to list it.
// Earlier builds stay listed; the other images of the build (ext4,
// OpenNebula, Vagrant), which have no files, are listed too, and the
// "-latest" aliases name the build published last, which is not always the
// newest. The top directory also holds "<minor>/" and "vault/", as
// upstream's does.
func (s *Site) PublishAlmaLinux(major, minor, date string, arches ...string) error {
	ups, err := redhatArches(arches)
	if err != nil {
		return err
	}
	if err := s.mkdirs("almalinux/"+minor, "almalinux/vault"); err != nil {
		return err
	}
	for _, a := range ups {
		dir := fmt.Sprintf("almalinux/%s/cloud/%s/images", major, a)
		sums, err := s.readSums(dir + "/CHECKSUM")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("AlmaLinux-%s-GenericCloud-%s-%s.%s.qcow2", major, minor, date, a)
		sum, _, err := s.WriteDisk(dir+"/"+name, "almalinux/"+major+"/"+minor+"/"+date+"/"+a)
		if err != nil {
			return err
		}
		sums[name] = sum
		sums[fmt.Sprintf("AlmaLinux-%s-GenericCloud-latest.%s.qcow2", major, a)] = sum
		for _, variant := range []string{"GenericCloud-ext4", "OpenNebula"} {
			n := fmt.Sprintf("AlmaLinux-%s-%s-%s-%s.%s.qcow2", major, variant, minor, date, a)
			sums[n] = fakeSum(n)
			sums[fmt.Sprintf("AlmaLinux-%s-%s-latest.%s.qcow2", major, variant, a)] = fakeSum(n)
		}
		box := fmt.Sprintf("AlmaLinux-%s-Vagrant-libvirt-%s-%s.%s.box", major, minor, date, a)
		sums[box] = fakeSum(box)
		if err := s.WriteFile(dir+"/CHECKSUM", gnuSums(sums, "  ")); err != nil {
			return err
		}
	}
	return nil
}
