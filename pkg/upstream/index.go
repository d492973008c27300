package upstream

import (
	"html"
	"net/url"
	"regexp"
	"strings"
)

var hrefAttr = regexp.MustCompile(`(?i)<a\s[^>]*?href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)

// ParseIndex returns the entries of an HTML directory listing (Apache,
// nginx, Go's http.FileServer) in page order: the link targets relative to
// the listed directory, directories with a trailing "/". Sort links
// ("?C=N;O=D"), the parent directory, absolute links and links into other
// directories are left out.
func ParseIndex(page []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range hrefAttr.FindAllSubmatch(page, -1) {
		href := string(m[1]) + string(m[2]) + string(m[3])
		href = html.UnescapeString(href)
		if href == "" || strings.ContainsAny(href, "?#") {
			continue
		}
		if u, err := url.Parse(href); err != nil || u.IsAbs() || u.Host != "" {
			continue
		}
		if p, err := url.PathUnescape(href); err == nil {
			href = p
		}
		href = strings.TrimPrefix(href, "./")
		name := strings.TrimSuffix(href, "/")
		if name == "" || name == "." || name == ".." || strings.HasPrefix(href, "/") || strings.Contains(name, "/") {
			continue
		}
		if !seen[href] {
			seen[href] = true
			out = append(out, href)
		}
	}
	return out
}

// Dirs returns the directory entries of ParseIndex, without the slash.
func Dirs(page []byte) []string {
	var out []string
	for _, e := range ParseIndex(page) {
		if strings.HasSuffix(e, "/") {
			out = append(out, strings.TrimSuffix(e, "/"))
		}
	}
	return out
}
