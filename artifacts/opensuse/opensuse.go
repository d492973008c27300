// Package opensuse finds the latest openSUSE cloud images on
// download.opensuse.org: Leap (one directory per version, an unversioned
// alias per image with a .sha256 file next to it) and the rolling
// Tumbleweed and MicroOS (one SHA256SUMS per architecture directory that
// lists only the current snapshot of both).
//
// Architectures are written x86_64, aarch64 and s390x in openSUSE's file
// names (tree.UpstreamArch); releases carry the OCI names amd64, arm64 and
// s390x.
package opensuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

const (
	// defaultBase is where all three products are published.
	defaultBase = "https://download.opensuse.org"
	// defaultUser is the login user of the Leap and Tumbleweed Minimal-VM
	// Cloud images.
	defaultUser = "opensuse"
	// instancetype is KubeVirt's default instancetype for every openSUSE
	// image.
	instancetype = "u1.medium"
)

// metadata describes an image whose cloud-init logs in user.
func metadata(description, user, preference string) catalog.Metadata {
	return catalog.Metadata{
		Description:  description,
		DefaultUser:  user,
		Instancetype: instancetype,
		Preference:   preference,
		UserData:     catalog.DefaultUserData(user),
	}
}

// fetchOptional fetches url and reports found=false, without an error, when
// the upstream does not have it: openSUSE publishes each architecture in
// its own file or directory, and a missing one means an architecture it
// does not build.
func fetchOptional(ctx context.Context, env catalog.Env, url string) (data []byte, found bool, err error) {
	data, err = env.Fetch.Fetch(ctx, url)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// firstLine returns the first non-blank line of data, shortened for an
// error message.
func firstLine(data []byte) string {
	for line := range bytes.Lines(data) {
		if s := strings.TrimSpace(string(line)); s != "" {
			if len(s) > 120 {
				s = s[:120] + "…"
			}
			return s
		}
	}
	return ""
}

// errNothingFound reports an upstream that answered but holds none of the
// images looked for, such as a --mirror URL pointing at the wrong
// directory.
func errNothingFound(what, where string) error {
	return fmt.Errorf("no %s under %s: expected the layout of %s (check the --mirror URL)", what, where, defaultBase)
}
