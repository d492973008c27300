package docs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pkgdocs "github.com/containerdisk/kubectl-containerdisk/pkg/docs"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

type publishOptions struct {
	pageOptions
	dir        string
	tokenFile  string
	apiURL     string
	dryRun     bool
	makePublic bool
}

func newPublishCommand(streams cli.Streams) *cobra.Command {
	var opts publishOptions
	cmd := &cobra.Command{
		Use:   "publish --registry quay.io/NAMESPACE --token-file FILE [flags]",
		Short: "Set the Quay repositories' descriptions to the generated pages",
		Long: `Read each repository's description through the Quay API and set it to the
page of its image where the two differ. The pages are read from --dir
(NAME.md, as docs generate writes them) or, without --dir, generated from
the catalog. By default nothing is changed (--dry-run=true): each line says
what would be done. The token is sent as a bearer token to the origin
(scheme, host and port) of --api-url only, redirects elsewhere go without
it, and it is never printed.
Visibility is left alone unless --make-public, which makes the private
repositories public.

A repository that fails does not stop the others; all failures are listed
at the end and the exit status is then 1.`,
		Example: `  # What would change
  kubectl containerdisk docs publish --registry quay.io/containerdisks --token-file quay.token

  # Change it, from pages generated before, and make the repositories public
  kubectl containerdisk docs publish --registry quay.io/containerdisks --token-file quay.token \
    --dir site --dry-run=false --make-public`,
		Args: cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if opts.tokenFile == "" {
				return cli.Usagef("--token-file is required: a file holding a Quay OAuth token, e.g. --token-file quay.token")
			}
			if !strings.HasPrefix(opts.apiURL, "https://") && !strings.HasPrefix(opts.apiURL, "http://") {
				return cli.Usagef("--api-url %q: expected an http:// or https:// URL, e.g. --api-url %s", opts.apiURL, pkgdocs.DefaultQuayAPI)
			}
			if _, ns, ok := strings.Cut(opts.registry, "/"); !ok || ns == "" || strings.Contains(ns, "/") {
				return cli.Usagef("--registry %q: expected quay.io/NAMESPACE, e.g. --registry quay.io/containerdisks", opts.registry)
			}
			return opts.parse(cmd)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPublish(cmd.Context(), streams, &opts)
		},
	}
	fs := cmd.Flags()
	opts.applyFlags(fs)
	fs.StringVar(&opts.dir, "dir", "", "directory of the pages to publish; without it the pages are generated from the catalog")
	fs.StringVar(&opts.tokenFile, "token-file", "", "file holding the Quay OAuth token (required)")
	fs.StringVar(&opts.apiURL, "api-url", pkgdocs.DefaultQuayAPI, "Quay base URL the API is under")
	option.AddDryRun(fs, &opts.dryRun, option.Publishes, "what would change in the descriptions")
	fs.BoolVar(&opts.makePublic, "make-public", false, "also make every private repository public")
	return cmd
}

func runPublish(ctx context.Context, streams cli.Streams, opts *publishOptions) error {
	data, err := readlimit.ReadFile(ctx, opts.tokenFile, readlimit.Secret, "a token file")
	if err != nil {
		return cli.Usagef("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return cli.Usagef("--token-file %s is empty: expected a Quay OAuth token", opts.tokenFile)
	}
	var pages []pkgdocs.Page
	if opts.dir != "" {
		pages, err = readPages(ctx, opts.dir)
	} else {
		pages, err = opts.pages(ctx, streams)
	}
	if err != nil {
		return err
	}
	_, ns, _ := strings.Cut(opts.registry, "/")
	// Quay answers 429 and 502-504 at times: such requests are sent again
	// after a pause (Retry-After when Quay gives one), as registry
	// requests are.
	status := option.NewStatus(streams.ErrOut, opts.quiet)
	transport := target.RetryTransport(nil, target.RemoteOptions{Log: status.Printf})
	q := &pkgdocs.Quay{APIURL: opts.apiURL, Namespace: ns, Token: token,
		HTTP: &http.Client{Transport: transport, Timeout: time.Minute}}
	results := q.Publish(ctx, pages, pkgdocs.PublishOptions{DryRun: opts.dryRun, MakePublic: opts.makePublic})
	var failed []string
	for _, r := range results {
		ref := opts.registry + "/" + strings.TrimPrefix(r.Repository, ns+"/")
		if r.Err != nil {
			failed = append(failed, ref+": "+r.Err.Error())
			continue
		}
		line := string(r.Action) + " " + ref
		if r.Visibility != "" {
			line += " (" + r.Visibility + ")"
		}
		fmt.Fprintln(streams.Out, line)
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(results)}
	}
	return nil
}

// readPages reads the NAME.md pages of dir, leaving out the index.
func readPages(ctx context.Context, dir string) ([]pkgdocs.Page, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var pages []pkgdocs.Page
	for _, p := range paths {
		file := filepath.Base(p)
		if file == pkgdocs.IndexName {
			continue
		}
		data, err := readlimit.ReadFile(ctx, p, readlimit.Config, "a documentation page")
		var le *readlimit.LimitError
		if errors.As(err, &le) {
			return nil, cli.Usagef("--dir: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the pages: %w", err)
		}
		pages = append(pages, pkgdocs.Page{Name: strings.TrimSuffix(file, ".md"), File: file, Content: data})
	}
	if len(pages) == 0 {
		return nil, cli.Usagef("--dir %s holds no NAME.md pages; write them with: kubectl containerdisk docs generate --dir %s", dir, dir)
	}
	return pages, nil
}
