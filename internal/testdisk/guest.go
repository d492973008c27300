package testdisk

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// GuestDisk returns the guest disk of arch that hack/guestdisk.sh builds (a
// small Debian root that libguestfs inspection recognises):
// $CONTAINERDISK_GUESTDISK (amd64) or $CONTAINERDISK_GUESTDISK_ARM64, else
// the newest one in the script's cache. It does not run the script, which
// may need the package archive.
func GuestDisk(arch string) (string, error) {
	env := "CONTAINERDISK_GUESTDISK"
	if arch != "amd64" {
		env += "_" + strings.ToUpper(arch)
	}
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w; build the disk with hack/guestdisk.sh %s", env, err, arch)
		}
		return p, nil
	}
	cache := os.Getenv("GUESTDISK_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "kubectl-containerdisk", "guestdisk")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "*", "disk-"+arch+".qcow2"))
	sort.Slice(matches, func(i, j int) bool { return modTime(matches[i]).After(modTime(matches[j])) })
	if len(matches) == 0 {
		return "", fmt.Errorf("no %s guest disk in %s: build it with `hack/guestdisk.sh %s` (or point $%s at one)", arch, cache, arch, env)
	}
	return matches[0], nil
}

func modTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
