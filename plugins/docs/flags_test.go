package docs_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// suiteTree returns the suite's whole command tree, as the reference
// renders it.
func suiteTree() *cobra.Command {
	discard := cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	root := cli.SuiteRoot()
	for _, name := range []string{"gather", "build", "push", "pipeline", "verify", "mirror", "docs"} {
		root.AddCommand(commands[name](discard))
	}
	return root
}

// walk calls fn with every command below root and its path below it
// ("mirror ls", "verify promote").
func walk(root *cobra.Command, fn func(path string, c *cobra.Command)) {
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			fn(strings.TrimPrefix(sub.CommandPath(), root.CommandPath()+" "), sub)
			visit(sub)
		}
	}
	visit(root)
}

// run runs the command at path below the root with args, as its binary
// does, and returns its exit code and stderr.
func run(path string, args ...string) (int, string) {
	top, rest, _ := strings.Cut(path, " ")
	var out, errOut bytes.Buffer
	streams := cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	argv := append(strings.Fields(rest), args...)
	code := cli.Run(context.Background(), streams, "kubectl containerdisk "+top, argv, commands[top])
	return code, errOut.String()
}

// outputVocabulary is every value -o may name, for people (text, or
// table where the output is a table) and for programs (json, yaml).
var outputVocabulary = []string{"text", "table", "json", "yaml"}

// outputUsage is the usage of every -o: "output format: A, B or C", then
// what the formats give on that command.
var outputUsage = regexp.MustCompile(`^output format: ([a-z]+(?:, [a-z]+)*(?: or [a-z]+)?)(?:; .+)?$`)

// TestOutputFlags: every -o of the suite speaks one vocabulary: its usage
// lists the formats it takes, it takes exactly those (and text for a
// table), completes them, and refuses anything else with the same error,
// naming the value and the formats, exit 2.
func TestOutputFlags(t *testing.T) {
	seen := 0
	walk(suiteTree(), func(path string, c *cobra.Command) {
		f := c.Flags().Lookup("output")
		if f == nil {
			return
		}
		seen++
		t.Run(strings.ReplaceAll(path, " ", "_"), func(t *testing.T) {
			if f.Shorthand != "o" {
				t.Errorf("--output has shorthand %q, want o", f.Shorthand)
			}
			m := outputUsage.FindStringSubmatch(f.Usage)
			if m == nil {
				t.Fatalf("-o usage %q: want %q", f.Usage, outputUsage)
			}
			formats := strings.Split(strings.ReplaceAll(m[1], " or ", ", "), ", ")
			for _, v := range formats {
				if !slices.Contains(outputVocabulary, v) {
					t.Errorf("-o lists %q: not one of the suite's formats %v", v, outputVocabulary)
				}
			}
			if !slices.Contains(formats, "json") {
				t.Errorf("-o lists %v: no json", formats)
			}
			if slices.Contains(formats, "text") == slices.Contains(formats, "table") {
				t.Errorf("-o lists %v: want one format for people, text or table", formats)
			}
			if !slices.Contains(formats, f.DefValue) {
				t.Errorf("-o defaults to %q, not one of %v", f.DefValue, formats)
			}

			// Each listed format, and text for a table, is taken.
			for _, v := range append(slices.Clone(formats), "text") {
				fresh := find(t, path)
				if err := fresh.Flags().Set("output", v); err != nil {
					t.Errorf("-o %s: %v", v, err)
				}
			}
			if slices.Contains(formats, "table") {
				fresh := find(t, path)
				fresh.Flags().Set("output", "text") //nolint:errcheck // checked above
				if got := fresh.Flags().Lookup("output").Value.String(); got != "table" {
					t.Errorf("-o text: the format is %q, want table", got)
				}
			}

			complete, ok := c.GetFlagCompletionFunc("output")
			if !ok {
				t.Errorf("-o has no completion")
			} else if comps, _ := complete(c, nil, ""); !slices.Equal(comps, formats) {
				t.Errorf("-o completes %v, want %v", comps, formats)
			}

			code, errOut := run(path, "-o", "xml")
			want := fmt.Sprintf("Error: invalid argument \"xml\" for \"-o, --output\" flag: expected one of %s\nRun 'kubectl containerdisk %s --help' for usage\n",
				strings.Join(formats, ", "), path)
			if code != cli.ExitUsage || errOut != want {
				t.Errorf("-o xml: exit %d, stderr\n%s\nwant exit %d, stderr\n%s", code, errOut, cli.ExitUsage, want)
			}
		})
	})
	if seen < 10 {
		t.Errorf("%d commands with -o, want the 10 of gather, build, push, verify, promote, mirror and its import, preload, ls, inspect", seen)
	}
}

// TestQuietFlags: every command with -o has -q, and every -q is the same.
func TestQuietFlags(t *testing.T) {
	var usage, first string
	walk(suiteTree(), func(path string, c *cobra.Command) {
		q := c.Flags().Lookup("quiet")
		switch {
		case q == nil && c.Flags().Lookup("output") != nil:
			t.Errorf("%s has -o but no -q", path)
		case q == nil:
		case q.Shorthand != "q":
			t.Errorf("%s: --quiet has shorthand %q, want q", path, q.Shorthand)
		case usage == "":
			usage, first = q.Usage, path
		case q.Usage != usage:
			t.Errorf("%s: -q usage %q; %s has %q", path, q.Usage, first, usage)
		}
	})
}

// dryRunDefaults are the documented defaults of --dry-run: a command that
// publishes is a dry run unless --dry-run=false; a command that keeps
// copies in sync writes unless --dry-run, as skopeo sync does, and says
// why in its help.
var dryRunDefaults = map[string]bool{
	"push":           true,
	"verify promote": true,
	"docs publish":   true,
	"mirror":         false,
	"mirror import":  false,
	"mirror preload": false,
}

// TestDryRunFlags: every --dry-run has its documented default, says it in
// its usage, and where it is off the command's help says why.
func TestDryRunFlags(t *testing.T) {
	seen := map[string]bool{}
	walk(suiteTree(), func(path string, c *cobra.Command) {
		f := c.Flags().Lookup("dry-run")
		if f == nil {
			return
		}
		seen[path] = true
		want, ok := dryRunDefaults[path]
		if !ok {
			t.Errorf("%s has --dry-run, with no documented default", path)
			return
		}
		if f.DefValue != fmt.Sprint(want) {
			t.Errorf("%s: --dry-run defaults to %s, want %v", path, f.DefValue, want)
		}
		if !strings.HasPrefix(f.Usage, "print ") || !strings.Contains(f.Usage, "write nothing") {
			t.Errorf("%s: --dry-run usage %q: want \"print WHAT, and write nothing; …\"", path, f.Usage)
		}
		if want && !strings.Contains(f.Usage, "--dry-run=false") {
			t.Errorf("%s: --dry-run usage %q does not say that --dry-run=false writes", path, f.Usage)
		}
		if !want {
			if !strings.Contains(f.Usage, "off by default") || !strings.Contains(f.Usage, "skopeo sync") {
				t.Errorf("%s: --dry-run usage %q does not say that it is off by default and why", path, f.Usage)
			}
			if !strings.Contains(c.Long, "--dry-run") {
				t.Errorf("%s: help does not say that it writes unless --dry-run:\n%s", path, c.Long)
			}
		}
	})
	if !strings.Contains(find(t, "mirror").Long, "skopeo sync does") {
		t.Errorf("mirror's help does not say why it is no dry run by default")
	}
	for path := range dryRunDefaults {
		if !seen[path] {
			t.Errorf("%s has no --dry-run", path)
		}
	}
}

// find returns the command at path in a new tree.
func find(t *testing.T, path string) *cobra.Command {
	t.Helper()
	c, _, err := suiteTree().Find(strings.Fields(path))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
