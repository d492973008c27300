package option

import (
	"os"
	"strconv"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// ParseCreated reads --created: RFC 3339 or Unix seconds, or else
// $SOURCE_DATE_EPOCH; zero when neither is given, for the build to take
// the disks' dates.
func ParseCreated(s string) (time.Time, error) {
	if s == "" {
		s = os.Getenv("SOURCE_DATE_EPOCH")
		if s == "" {
			return time.Time{}, nil
		}
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, cli.Usagef("creation time %q: expected RFC 3339 (2024-05-01T12:00:00Z) or Unix seconds", s)
	}
	return t, nil
}
