package testupstream

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	bsdSumLine  = regexp.MustCompile(`^SHA256 \((.+)\) = ([0-9a-f]{64})$`)
	bsdSizeLine = regexp.MustCompile(`^# (.+): ([0-9]+) bytes$`)
)

// centosFile is one file a CentOS CHECKSUM lists.
type centosFile struct{ sum, size string }

// PublishCentOSStream publishes build ("20240101.0") of CentOS Stream
// version ("9", "10") for arches (x86_64/amd64, aarch64/arm64, s390x, or
// others such as ppc64le; all three of KubeVirt's when none are given): it
// writes centos-stream/<version>-stream/<arch>/images/
// CentOS-Stream-GenericCloud-<version>-<build>.<arch>.qcow2 and rewrites
// that directory's CHECKSUM (BSD format with "# file: N bytes" comments,
// sorted by name, as upstream writes it) to list it. Earlier builds stay
// listed; the other images of the build (UEFI, Container, ec2, Vagrant),
// which have no files, are listed too, and the "-latest" aliases name the
// build published last, which is not always the newest. The top directory
// also holds "7/" and "HEADER.html", as upstream's does.
func (s *Site) PublishCentOSStream(version, build string, arches ...string) error {
	ups, err := redhatArches(arches)
	if err != nil {
		return err
	}
	if err := s.mkdirs("centos-stream/7"); err != nil {
		return err
	}
	if err := s.WriteFile("centos-stream/HEADER.html", []byte("<h1>CentOS cloud images</h1>\n")); err != nil {
		return err
	}
	for _, a := range ups {
		dir := fmt.Sprintf("centos-stream/%s-stream/%s/images", version, a)
		files, err := s.readCentOSChecksum(dir + "/CHECKSUM")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("CentOS-Stream-GenericCloud-%s-%s.%s.qcow2", version, build, a)
		sum, _, err := s.WriteDisk(dir+"/"+name, "centos-stream/"+version+"/"+build+"/"+a)
		if err != nil {
			return err
		}
		disk := centosFile{sum: sum, size: s.fileSize(dir + "/" + name)}
		files[name] = disk
		files[fmt.Sprintf("CentOS-Stream-GenericCloud-%s-latest.%s.qcow2", version, a)] = disk
		for _, other := range []string{
			"CentOS-Stream-GenericCloud-UEFI-%s-%s.%s.qcow2",
			"CentOS-Stream-Container-Base-%s-%s.%s.tar.xz",
			"CentOS-Stream-ec2-%s-%s.%s.raw.xz",
			"CentOS-Stream-Vagrant-%s-%s.%s.vagrant-libvirt.box",
		} {
			n := fmt.Sprintf(other, version, build, a)
			f := centosFile{sum: fakeSum(n), size: "754384896"}
			files[n] = f
			files[fmt.Sprintf(other, version, "latest", a)] = f
		}
		var b strings.Builder
		for _, n := range sortedKeys(files) {
			fmt.Fprintf(&b, "# %s: %s bytes\nSHA256 (%s) = %s\n", n, files[n].size, n, files[n].sum)
		}
		if err := s.WriteFile(dir+"/CHECKSUM", []byte(b.String())); err != nil {
			return err
		}
	}
	return nil
}

func (s *Site) readCentOSChecksum(path string) (map[string]centosFile, error) {
	data, err := s.ReadFile(path)
	if err != nil {
		return nil, err
	}
	files := map[string]centosFile{}
	sizes := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if m := bsdSizeLine.FindStringSubmatch(line); m != nil {
			sizes[m[1]] = m[2]
		} else if m := bsdSumLine.FindStringSubmatch(line); m != nil {
			files[m[1]] = centosFile{sum: m[2], size: sizes[m[1]]}
		}
	}
	return files, nil
}
