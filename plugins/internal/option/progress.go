package option

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
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

// DownloadProgress reports each catalog download: a status line, and a bar
// on a terminal.
func DownloadProgress(status *Status, w io.Writer, terminal, quiet bool) func(r catalog.Release, total int64) io.Writer {
	return func(r catalog.Release, total int64) io.Writer {
		status.Printf("Downloading %s %s from %s", r.Key(), r.Arch, r.URL)
		if bar := ProgressBar(w, terminal, quiet, total, r.Key()+" "+r.Arch); bar != nil {
			return bar
		}
		return nil
	}
}

// CustomizeLog reports the steps of customizing a catalog release, and the
// libguestfs tools' own progress lines, as status lines: the tools report
// steps, not bytes, so there is no bar to draw.
func CustomizeLog(status *Status) func(r catalog.Release, line string) {
	return func(r catalog.Release, line string) {
		status.Printf("%s %s: %s", r.Key(), r.Arch, line)
	}
}

// CustomizeDiskLog is CustomizeLog for a local disk file of architecture
// arch.
func CustomizeDiskLog(status *Status, path, arch string) func(line string) {
	return func(line string) {
		status.Printf("%s %s: %s", path, arch, line)
	}
}
