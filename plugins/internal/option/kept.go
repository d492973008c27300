package option

import (
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
)

// WarnKept warns of a unique tag that transfer.Push left on the other
// image it already named (e is a transfer.ActionKept event); it ignores
// other events. Users pin that tag, so it is never moved.
func WarnKept(s *Status, repo target.Reference, e transfer.Event) {
	if e.Action != transfer.ActionKept {
		return
	}
	s.Warnf("kept %s on %s: it is a unique tag and already names that other image, so it is not moved to %s; the image has its other tags",
		repo.WithReference(e.Tag), e.Was.Digest, e.Descriptor.Digest)
}
