package dispatch

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

func TestParseCompletions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		out       string
		want      []cobra.Completion
		directive cobra.ShellCompDirective
	}{
		{"flags", "--to\tdestination\n--tag\tfurther tag\n:4\n", []cobra.Completion{"--to\tdestination", "--tag\tfurther tag"}, cobra.ShellCompDirectiveNoFileComp},
		{"none", ":0\n", nil, cobra.ShellCompDirectiveDefault},
		{"no directive", "a\n", []cobra.Completion{"a"}, cobra.ShellCompDirectiveDefault},
		{"colon value", ":a\n:2\n", []cobra.Completion{":a"}, cobra.ShellCompDirectiveNoSpace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, d := parseCompletions([]byte(tc.out))
			if diff := cmp.Diff(tc.want, got); diff != "" || d != tc.directive {
				t.Errorf("parseCompletions(%q): directive %d, want %d; completions (-want +got):\n%s", tc.out, d, tc.directive, diff)
			}
		})
	}
}
