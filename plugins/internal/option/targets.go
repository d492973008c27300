package option

import (
	"context"
	"os"
	"sync"

	"oras.land/oras-go/v2"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// Targets opens each repository or layout once and shares it between the
// goroutines of a run: two versions of a name go into one layout, whose
// index must not be written by two stores at once.
type Targets struct {
	opts target.RemoteOptions
	mu   sync.Mutex
	m    map[string]oras.GraphTarget
}

// NewTargets returns an empty set of targets.
func NewTargets(opts target.RemoteOptions) *Targets {
	return &Targets{opts: opts, m: map[string]oras.GraphTarget{}}
}

// Open returns the target of ref's repository, creating a layout directory
// when needed.
func (c *Targets) Open(ctx context.Context, ref target.Reference) (oras.GraphTarget, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := ref.Repo()
	if t, ok := c.m[key]; ok {
		return t, nil
	}
	if ref.Kind == target.KindLayout {
		if err := os.MkdirAll(ref.Path, 0o755); err != nil {
			return nil, err
		}
	}
	t, err := target.Open(ctx, ref, c.opts)
	if err != nil {
		return nil, err
	}
	c.m[key] = t
	return t, nil
}
