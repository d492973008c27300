package pipeline_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
)

// TestShard: --shard K/N splits the catalog between runs as it does for
// build and push: the Jobs of the N runs are those of one run without
// --shard, each in exactly one of them.
func TestShard(t *testing.T) {
	w := newWorld(t)
	jobs := func(extra ...string) []string {
		t.Helper()
		args := append(w.flags(), "--focus", "tiny:*", "--print", "-n", "builds",
			"--image", "registry.example.com/kubectl-containerdisk:test", "--staging", "registry.example.com/staging")
		code, out, errOut := run(t.Context(), "pipeline", pipeline.NewCommand, append(args, extra...)...)
		if code != 0 {
			t.Fatalf("pipeline --print %v: exit %d\n%s", extra, code, errOut)
		}
		var names []string
		for _, m := range regexp.MustCompile(`(?m)^  name: (containerdisk-tiny-\S+)$`).FindAllStringSubmatch(out, -1) {
			names = append(names, m[1])
		}
		return names
	}
	all := jobs()
	if len(all) != 4 {
		t.Fatalf("without --shard: Jobs %v, want 4", all)
	}
	var union []string
	for _, s := range []string{"0/3", "1/3", "2/3"} {
		part := jobs("--shard", s)
		for _, j := range part {
			if slices.Contains(union, j) {
				t.Errorf("Job %s is in two shards", j)
			}
		}
		t.Logf("--shard %s: %v", s, part)
		union = append(union, part...)
	}
	slices.Sort(all)
	slices.Sort(union)
	if !slices.Equal(all, union) {
		t.Errorf("the shards' Jobs %v, want %v", union, all)
	}
}
