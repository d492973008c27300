package option

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/containerdisk/kubectl-containerdisk/artifacts"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalogfile"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// Catalog holds the flags that choose catalog entries and reach their
// upstreams: --focus, --catalog, --mirror, --shard.
type Catalog struct {
	Focus   []string
	Files   []string
	Mirrors []string
	Shard   string
	Retries int
	Timeout time.Duration

	sel     catalog.Selection
	mirrors map[string]string
	files   []*catalogfile.File
}

// ApplyFlags adds the catalog flags.
func (o *Catalog) ApplyFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.Focus, "focus", nil, "catalog entries to work on, as NAME:VERSION globs (fedora:*, ubuntu:24.04, *:*); repeatable or comma-separated")
	fs.StringArrayVar(&o.Files, "catalog", nil, "YAML catalog file adding entries or replacing built-in ones by name; repeatable")
	fs.StringArrayVar(&o.Mirrors, "mirror", nil, "upstream base URL for a distribution, as NAME=URL (https:// or file://), or *=URL for every one as URL/NAME; repeatable")
	fs.StringVar(&o.Shard, "shard", "", "work on shard K of N (0-based), as K/N, so that N separate runs split the catalog")
	fs.IntVar(&o.Retries, "retries", upstream.DefaultRetries, "retries of an upstream request that failed with 5xx, 429, a reset or a timeout")
	fs.DurationVar(&o.Timeout, "upstream-timeout", upstream.DefaultTimeout, "time limit of each upstream metadata request")
}

// Parse checks the flags and reads the catalog files.
func (o *Catalog) Parse(cmd *cobra.Command) error {
	for _, f := range o.Focus {
		for _, g := range strings.Split(f, ",") {
			if g = strings.TrimSpace(g); g != "" {
				o.sel.Focus = append(o.sel.Focus, g)
			}
		}
	}
	if o.Shard != "" {
		k, n, err := catalog.ParseShard(o.Shard)
		if err != nil {
			return cli.Usagef("--shard: %v", err)
		}
		o.sel.Shard, o.sel.Shards = k, n
	}
	o.mirrors = map[string]string{}
	for _, m := range o.Mirrors {
		name, u, ok := strings.Cut(m, "=")
		if !ok || name == "" || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file://")) {
			return cli.Usagef("--mirror %q: expected NAME=URL with an http://, https:// or file:// URL, e.g. --mirror fedora=https://mirror.example.com/fedora", m)
		}
		if strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "file:///") {
			// file://relative/dir: make it absolute.
			abs, err := filepath.Abs(strings.TrimPrefix(u, "file://"))
			if err != nil {
				return err
			}
			u = "file://" + abs
		}
		o.mirrors[name] = u
	}
	for _, path := range o.Files {
		data, err := readlimit.ReadFile(cmd.Context(), path, readlimit.Config, "a catalog file")
		if err != nil {
			return cli.Usagef("--catalog: %w", err)
		}
		f, err := catalogfile.ParseFile(path, data)
		if err != nil {
			return cli.Usagef("%v", err)
		}
		o.files = append(o.files, f)
	}
	return nil
}

// CompleteFocus completes --focus with the built-in catalog's distributions,
// as NAME:* globs, after any entries already given comma-separated.
func CompleteFocus(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	done := toComplete[:strings.LastIndex(toComplete, ",")+1]
	var comps []cobra.Completion
	for _, name := range artifacts.Catalog(nil).Names() {
		comps = append(comps, done+name+":*")
	}
	return comps, cobra.ShellCompDirectiveNoFileComp
}

// Selection returns what --focus and --shard select.
func (o *Catalog) Selection() catalog.Selection { return o.sel }

// Focused reports whether --focus was given.
func (o *Catalog) Focused() bool { return len(o.sel.Focus) > 0 }

// Client returns the upstream client; log, when set, is told of retries.
func (o *Catalog) Client(log func(format string, args ...any)) *upstream.Client {
	retries := o.Retries
	if retries == 0 {
		retries = -1
	}
	return upstream.NewClient(upstream.Options{
		UserAgent: "kubectl-containerdisk/" + cli.Version,
		Retries:   retries,
		Timeout:   o.Timeout,
		Log:       log,
	})
}

// Catalog returns the built-in catalog with the --catalog files merged in
// and the --mirror bases set, checked against the selection.
func (o *Catalog) Catalog(fetch catalog.Fetcher) (*catalog.Catalog, error) {
	c := artifacts.Catalog(fetch)
	for _, f := range o.files {
		catalogfile.Merge(c, f)
	}
	c.Mirrors = o.mirrors
	if err := c.Validate(o.sel); err != nil {
		return nil, cli.Usagef("%v", err)
	}
	return c, nil
}

// DefaultCacheDir is where downloads are kept: $XDG_CACHE_HOME or
// ~/.cache, under kubectl-containerdisk/downloads.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "kubectl-containerdisk-downloads")
	}
	return filepath.Join(dir, "kubectl-containerdisk", "downloads")
}
