package option

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Parallel calls fn(i) for every i in [0, n), at most workers at once
// (--workers). Once ctx is done, the calls not yet started are skipped.
func Parallel(ctx context.Context, n, workers int, fn func(i int)) {
	var g errgroup.Group
	g.SetLimit(max(workers, 1))
	for i := range n {
		g.Go(func() error {
			if ctx.Err() == nil {
				fn(i)
			}
			return nil
		})
	}
	g.Wait() //nolint:errcheck // the calls return no error
}
