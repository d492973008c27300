package catalog

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// Policy is the end-of-life rule of a distribution: which of the versions its
// upstream still publishes are curated.
type Policy struct {
	// MinVersion drops versions older than it (by CompareVersions).
	MinVersion string `yaml:"minVersion" json:"minVersion,omitempty"`
	// Keep keeps only the newest Keep versions, when positive.
	Keep int `yaml:"keep" json:"keep,omitempty"`
	// EOL maps a version to its end-of-life date (YYYY-MM-DD); from that
	// day on the version drops out.
	EOL map[string]string `yaml:"eol" json:"eol,omitempty"`
}

// Catalog is the set of curated distributions and how to reach them.
type Catalog struct {
	// Distros are the distributions, in the order they are listed.
	Distros []Distro
	// Policies are the end-of-life rules by distribution name.
	Policies map[string]Policy
	// Mirrors replace a distribution's DefaultBase, by name; the name "*"
	// applies to every distribution without its own entry, as
	// URL + "/" + name.
	Mirrors map[string]string
	// Fetch reads upstream metadata.
	Fetch Fetcher
	// Now is when end-of-life rules are evaluated; time.Now when zero.
	Now time.Time
}

// Selection chooses releases from a gathered catalog.
type Selection struct {
	// Focus are globs over "name:version" ("fedora:*", "ubuntu:24.04",
	// "*:*"); a glob without ":" matches every version of a name. Empty
	// selects everything.
	Focus []string
	// Shard, when Shards > 1, keeps only the name:version entries that
	// fall in shard Shard of Shards (0-based), split by a hash of the
	// key so that separate runs agree without talking to each other.
	Shard, Shards int
}

// Base returns the upstream base URL of d, after mirrors.
func (c *Catalog) Base(d Distro) string {
	if m, ok := c.Mirrors[d.Name()]; ok {
		return strings.TrimSuffix(m, "/")
	}
	if m, ok := c.Mirrors["*"]; ok {
		return strings.TrimSuffix(m, "/") + "/" + d.Name()
	}
	return d.DefaultBase()
}

// Names returns the distribution names.
func (c *Catalog) Names() []string {
	var names []string
	for _, d := range c.Distros {
		names = append(names, d.Name())
	}
	return names
}

// Validate checks that every focus glob and mirror names a distribution
// of the catalog, so that a typo is an error and not an empty run.
func (c *Catalog) Validate(sel Selection) error {
	names := c.Names()
	for _, f := range sel.Focus {
		if err := validGlob(f); err != nil {
			return err
		}
		name, _, _ := strings.Cut(f, ":")
		if !slices.ContainsFunc(names, func(n string) bool { ok, _ := path.Match(name, n); return ok }) {
			return &inputerr.Error{Input: f, What: "focus", Expected: "NAME:VERSION globs matching a catalog name, one of " + strings.Join(names, ", ")}
		}
	}
	for name := range c.Mirrors {
		if name != "*" && !slices.Contains(names, name) {
			return &inputerr.Error{Input: name, What: "mirror", Expected: "a catalog name (one of " + strings.Join(names, ", ") + ") or *"}
		}
	}
	if sel.Shards < 0 || (sel.Shards > 0 && (sel.Shard < 0 || sel.Shard >= sel.Shards)) {
		return &inputerr.Error{Input: fmt.Sprintf("%d/%d", sel.Shard, sel.Shards), What: "shard", Expected: "K/N with 0 <= K < N"}
	}
	return nil
}

func validGlob(f string) error {
	name, version, _ := strings.Cut(f, ":")
	for _, g := range []string{name, version} {
		if _, err := path.Match(g, ""); err != nil {
			return &inputerr.Error{Input: f, What: "focus", Expected: "a glob such as fedora:* or ubuntu:24.04"}
		}
	}
	if name == "" {
		return &inputerr.Error{Input: f, What: "focus", Expected: "NAME or NAME:VERSION, e.g. fedora:* or ubuntu:24.04"}
	}
	return nil
}

// ParseShard parses "K/N".
func ParseShard(s string) (k, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 0 || k >= n {
		return 0, 0, &inputerr.Error{Input: s, What: "shard", Expected: "K/N with 0 <= K < N, e.g. 0/4 (an Indexed Job's $JOB_COMPLETION_INDEX/N)"}
	}
	return k, n, nil
}

// Matches reports whether the selection keeps a name:version.
func (s Selection) Matches(name, version string) bool {
	if s.Shards > 1 && ShardOf(name+":"+version, s.Shards) != s.Shard {
		return false
	}
	if len(s.Focus) == 0 {
		return true
	}
	for _, f := range s.Focus {
		fn, fv, ok := strings.Cut(f, ":")
		if !ok {
			fv = "*"
		}
		if m, _ := path.Match(fn, name); !m {
			continue
		}
		if m, _ := path.Match(fv, version); m {
			return true
		}
	}
	return false
}

// ShardOf returns the shard, of n, that key falls in.
func ShardOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key)) //nolint:errcheck // never fails
	return int(h.Sum32() % uint32(n))
}

// A GatherError reports a distribution whose upstream could not be read.
type GatherError struct {
	Name string
	Err  error
}

func (e *GatherError) Error() string { return fmt.Sprintf("%s: %v", e.Name, e.Err) }

// Unwrap returns the underlying error.
func (e *GatherError) Unwrap() error { return e.Err }

// Gather reads every selected distribution's upstream concurrently and returns
// the releases the selection keeps, after the end-of-life policies, with the
// newest stable version of each name marked Latest. The order is the
// catalog's, then version, then architecture. A distribution whose upstream
// cannot be read is reported as a Release with Err set (Version "*"), so that
// the others go on.
func (c *Catalog) Gather(ctx context.Context, sel Selection) ([]Release, error) {
	if err := c.Validate(sel); err != nil {
		return nil, err
	}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	results := make([][]Release, len(c.Distros))
	var wg sync.WaitGroup
	for i, d := range c.Distros {
		if !sel.namePossible(d.Name()) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := Env{Base: c.Base(d), Fetch: c.Fetch, Now: now}
			rels, err := d.Releases(ctx, env)
			if err != nil {
				results[i] = []Release{{Name: d.Name(), Version: "*", Err: &GatherError{Name: d.Name(), Err: err}}}
				return
			}
			rels = c.Policies[d.Name()].apply(rels, now)
			markLatest(rels)
			for _, r := range rels {
				if sel.Matches(r.Name, r.Version) {
					results[i] = append(results[i], r)
				}
			}
			sortReleases(results[i])
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Release
	for _, r := range results {
		out = append(out, r...)
	}
	return out, nil
}

// namePossible reports whether any focus glob can match name.
func (s Selection) namePossible(name string) bool {
	if len(s.Focus) == 0 {
		return true
	}
	for _, f := range s.Focus {
		fn, _, _ := strings.Cut(f, ":")
		if m, _ := path.Match(fn, name); m {
			return true
		}
	}
	return false
}

func (p Policy) apply(rels []Release, now time.Time) []Release {
	var versions []string
	for _, r := range rels {
		if !slices.Contains(versions, r.Version) {
			versions = append(versions, r.Version)
		}
	}
	slices.SortFunc(versions, CompareVersions)
	keep := map[string]bool{}
	for _, v := range versions {
		keep[v] = true
		if p.MinVersion != "" && CompareVersions(v, p.MinVersion) < 0 {
			keep[v] = false
		}
		if d, ok := p.EOL[v]; ok {
			if t, err := time.Parse(time.DateOnly, d); err == nil && !now.Before(t) {
				keep[v] = false
			}
		}
	}
	if p.Keep > 0 {
		n := 0
		for i := len(versions) - 1; i >= 0; i-- {
			if !keep[versions[i]] {
				continue
			}
			n++
			if n > p.Keep {
				keep[versions[i]] = false
			}
		}
	}
	var out []Release
	for _, r := range rels {
		// An error for a part of the upstream whose version is not known
		// (a Debian codename, say) is always reported.
		unknown := r.Err != nil && (r.Version == "" || r.Version[0] < '0' || r.Version[0] > '9')
		if keep[r.Version] || unknown {
			out = append(out, r)
		}
	}
	return out
}

// markLatest marks the newest stable version of the releases Latest.
func markLatest(rels []Release) {
	latest := ""
	for _, r := range rels {
		if r.Stable && r.Err == nil && (latest == "" || CompareVersions(r.Version, latest) > 0) {
			latest = r.Version
		}
	}
	for i := range rels {
		rels[i].Latest = latest != "" && rels[i].Version == latest
	}
}

func sortReleases(rels []Release) {
	slices.SortStableFunc(rels, func(a, b Release) int {
		if c := CompareVersions(a.Version, b.Version); c != 0 {
			return c
		}
		return archIndex(a.Arch) - archIndex(b.Arch)
	})
}

func archIndex(a string) int {
	if i := slices.Index(containerdisk.Architectures, a); i >= 0 {
		return i
	}
	return len(containerdisk.Architectures)
}

// Group is the releases of one name:version: the unit that is built and
// pushed, as one image index.
type Group struct {
	Name, Version string
	Releases      []Release
}

// Key is "name:version".
func (g Group) Key() string { return g.Name + ":" + g.Version }

// Err joins the errors of the group's releases, each message once (a
// checksum list that cannot be read fails every architecture alike).
func (g Group) Err() error {
	var errs []error
	seen := map[string]bool{}
	for _, r := range g.Releases {
		if r.Err != nil && !seen[r.Err.Error()] {
			seen[r.Err.Error()] = true
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}

// Latest reports whether the group is its name's latest version.
func (g Group) Latest() bool {
	return len(g.Releases) > 0 && g.Releases[0].Latest
}

// GroupReleases groups releases by name:version, keeping their order.
func GroupReleases(rels []Release) []Group {
	var groups []Group
	index := map[string]int{}
	for _, r := range rels {
		i, ok := index[r.Key()]
		if !ok {
			i = len(groups)
			index[r.Key()] = i
			groups = append(groups, Group{Name: r.Name, Version: r.Version})
		}
		groups[i].Releases = append(groups[i].Releases, r)
	}
	return groups
}
