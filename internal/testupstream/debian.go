package testupstream

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

var debianBuild = regexp.MustCompile(`^[0-9]{8}-[0-9]{4}$`)

// PublishDebian publishes Debian build ("20250210-2019") of version ("12")
// with codename ("bookworm") for arches (amd64 and arm64 when none are
// given; any other is written too), as cloud.debian.org/images/cloud does.
// Into debian/<codename>/<build>/ go, for each arch,
// debian-<version>-genericcloud-<arch>-<build>.qcow2 (a real disk) and
// .json, and a SHA512SUMS (hex) of the build's files. The JSON is a List
// with a Build item (data.info.version is the build, a short excerpt of the
// package list) and Upload items for the tar.xz, raw and qcow2 formats, in
// that order, each with its "cloud.debian.org/digest" annotation
// ("sha512:" and the unpadded base64 of the digest) and data.ref, the path
// from the top directory. Only the qcow2 file exists. The JSON is copied to
// debian/<codename>/latest/debian-<version>-genericcloud-<arch>.json unless
// latest/ already holds a newer build for that arch. The top directory also
// holds sid/ (daily builds, no latest genericcloud JSON),
// <codename>-backports/ and OpenStack/, as upstream's does.
func (s *Site) PublishDebian(version, codename, build string, arches ...string) error {
	if version == "" || codename == "" || !debianBuild.MatchString(build) {
		return fmt.Errorf("publish debian %q %q %q: expected a version such as 12, a codename such as bookworm and a build such as 20250210-2019", version, codename, build)
	}
	arches, err := debianArches(arches, "amd64", "arm64")
	if err != nil {
		return err
	}
	dir := codename + "/" + build
	sumsPath := "debian/" + dir + "/SHA512SUMS"
	sums, err := s.readSums(sumsPath)
	if err != nil {
		return err
	}
	for _, a := range arches {
		base := fmt.Sprintf("debian-%s-genericcloud-%s-%s", version, a, build)
		_, sum512, err := s.WriteDisk("debian/"+dir+"/"+base+".qcow2", "debian/"+version+"/"+build+"/"+a)
		if err != nil {
			return err
		}
		raw, _ := hex.DecodeString(sum512)
		uploads := []debianUpload{
			{format: "internal", ref: dir + "/" + base + ".tar.xz", digest: fakeDigest512(dir + "/" + base + ".tar.xz")},
			{format: "raw", ref: dir + "/" + base + ".raw", digest: fakeDigest512(dir + "/" + base + ".raw")},
			{format: "qcow2", ref: dir + "/" + base + ".qcow2", digest: raw},
		}
		doc, err := debianImageList(version, codename, build, a, uploads)
		if err != nil {
			return err
		}
		if err := s.WriteFile("debian/"+dir+"/"+base+".json", doc); err != nil {
			return err
		}
		for _, u := range uploads {
			sums[strings.TrimPrefix(u.ref, dir+"/")] = hex.EncodeToString(u.digest)
		}
		h := sha512.Sum512(doc)
		sums[base+".json"] = hex.EncodeToString(h[:])

		latest := fmt.Sprintf("debian/%s/latest/debian-%s-genericcloud-%s.json", codename, version, a)
		current, err := s.debianLatestBuild(latest)
		if err != nil {
			return err
		}
		if current == "" || catalog.CompareVersions(build, current) >= 0 {
			if err := s.WriteFile(latest, doc); err != nil {
				return err
			}
		}
	}
	if err := s.WriteFile(sumsPath, gnuSums(sums, "  ")); err != nil {
		return err
	}
	// Distractors: directories that are not releases, and a backports
	// directory whose JSON names are not debian-<N>-genericcloud-<arch>.json.
	if err := s.WriteFile("debian/sid/daily/"+build+"/SHA512SUMS", []byte{}); err != nil {
		return err
	}
	if err := s.WriteFile("debian/sid/latest/SHA512SUMS", []byte{}); err != nil {
		return err
	}
	if err := s.mkdirs("debian/OpenStack/current", "debian/"+codename+"/daily"); err != nil {
		return err
	}
	for _, a := range arches {
		if err := s.WriteFile(fmt.Sprintf("debian/%s-backports/latest/debian-%s-backports-genericcloud-%s.json", codename, version, a), []byte(`{"apiVersion": "v1", "items": [], "kind": "List"}`+"\n")); err != nil {
			return err
		}
	}
	return nil
}

// debianUpload is one Upload item of a Debian image list.
type debianUpload struct {
	format string // "qcow2", "raw", "internal" (the tar.xz)
	ref    string // path from the top directory
	digest []byte // sha512
}

// debianImageList writes the JSON that cloud.debian.org publishes beside each
// image: a List of one Build item and the Upload items.
func debianImageList(version, codename, build, arch string, uploads []debianUpload) ([]byte, error) {
	labels := func(extra ...string) map[string]string {
		l := map[string]string{
			"cloud.debian.org/vendor":  "genericcloud",
			"cloud.debian.org/version": build,
			"debian.org/arch":          arch,
			"debian.org/dist":          "debian",
			"debian.org/release":       codename,
		}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	digest := func(d []byte) map[string]string {
		return map[string]string{"cloud.debian.org/digest": "sha512:" + base64.RawStdEncoding.EncodeToString(d)}
	}
	type pkg struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	items := []any{map[string]any{
		"apiVersion": "cloud.debian.org/v1alpha1",
		"kind":       "Build",
		"metadata": map[string]any{
			"annotations": digest(fakeDigest512(codename + "/" + build + "/" + arch + " build")),
			"labels":      labels(),
			"uid":         fakeUID(codename + build + arch),
		},
		"data": map[string]any{
			"info": map[string]string{
				"arch":           arch,
				"build_id":       "cloud-admin-team-master",
				"release":        codename,
				"release_baseid": version,
				"release_id":     version,
				"type":           "official",
				"vendor":         "genericcloud",
				"version":        build,
			},
			"packages": []pkg{
				{"adduser", "3.134"},
				{"cloud-init", "22.4.2-1+deb" + version + "u2"},
				{"linux-image-cloud-" + arch, "6.1.0-31"},
				{"openssh-server", "1:9.2p1-2+deb" + version + "u4"},
				{"qemu-guest-agent", "1:7.2+dfsg-7+deb" + version + "u7"},
			},
		},
	}}
	for _, u := range uploads {
		items = append(items, map[string]any{
			"apiVersion": "cloud.debian.org/v1alpha1",
			"kind":       "Upload",
			"metadata": map[string]any{
				"annotations": digest(u.digest),
				"labels":      labels("upload.cloud.debian.org/image-format", u.format, "upload.cloud.debian.org/type", "release"),
				"uid":         fakeUID(u.ref),
			},
			"data": map[string]any{"familyRef": nil, "provider": "cloud.debian.org", "ref": u.ref},
		})
	}
	return json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "    ")
}

// debianLatestBuild returns the build of the image list at path, "" when
// there is none.
func (s *Site) debianLatestBuild(path string) (string, error) {
	data, err := s.ReadFile(path)
	if err != nil || len(data) == 0 {
		return "", err
	}
	var list struct {
		Items []struct {
			Kind string `json:"kind"`
			Data struct {
				Info struct {
					Version string `json:"version"`
				} `json:"info"`
			} `json:"data"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		// A test broke it on purpose: the new build replaces it.
		return "", nil
	}
	for _, it := range list.Items {
		if it.Kind == "Build" {
			return it.Data.Info.Version, nil
		}
	}
	return "", nil
}

// fakeDigest512 is a SHA-512 digest for a listed file that has no content on
// the site.
func fakeDigest512(name string) []byte {
	h := sha512.Sum512([]byte("no such file: " + name))
	return h[:]
}

// fakeUID is a stable UUID-shaped id derived from seed.
func fakeUID(seed string) string {
	h := hex.EncodeToString(fakeDigest512(seed))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
