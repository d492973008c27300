package option

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// ProgressBar returns a byte progress bar on w, or nil when w is no
// terminal or status is off: bars are for people, never for logs.
func ProgressBar(w io.Writer, terminal, quiet bool, total int64, description string) *progressbar.ProgressBar {
	if quiet || !terminal {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionOnCompletion(func() { io.WriteString(w, "\n") }),
	)
}
