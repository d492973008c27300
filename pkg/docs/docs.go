// Package docs renders the documentation of the curated containerdisks from
// the catalog: one Markdown page per image repository, for its newest stable
// version, and an index of images and architectures. The output depends only
// on its input, so that regenerated pages can be compared with published ones.
package docs

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// DefaultRegistry is the image prefix the examples use unless told otherwise.
const DefaultRegistry = "quay.io/containerdisks"

// DefaultImportSize is the disk size the --volume-import example asks for.
const DefaultImportSize = "10Gi"

// Architectures are the columns of the index, in this order.
var Architectures = []string{"amd64", "arm64", "s390x"}

// IndexName is the file name of the index page.
const IndexName = "README.md"

// Options tell Generate how to write the examples.
type Options struct {
	// Registry is the image prefix, e.g. quay.io/containerdisks; empty
	// means DefaultRegistry.
	Registry string
	// ImportSize is the size of the imported disk; empty means
	// DefaultImportSize.
	ImportSize string
}

// Page is one generated file.
type Page struct {
	// Name is the image repository name, or "" for the index.
	Name string
	// File is the file name, NAME.md or README.md.
	File string
	// Content is the Markdown text.
	Content []byte
}

// Image is what a page documents: the newest stable version of one name.
type Image struct {
	Name          string
	Version       string
	Architectures []string
	Metadata      catalog.Metadata
}

// Images picks, for every name, its newest stable version (the one the
// catalog marks latest, or else the highest stable version) and the
// architectures it was found for. Releases with an error, and those whose
// metadata says NoDocs, are left out. The result is sorted by name.
func Images(rels []catalog.Release) []Image {
	byName := map[string][]catalog.Release{}
	for _, r := range rels {
		if r.Err != nil || r.Metadata.NoDocs {
			continue
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	var images []Image
	for name, rs := range byName {
		version, ok := "", false
		for _, r := range rs {
			if r.Latest && r.Stable {
				version, ok = r.Version, true
				break
			}
		}
		if !ok {
			for _, r := range rs {
				if r.Stable && (!ok || catalog.CompareVersions(r.Version, version) > 0) {
					version, ok = r.Version, true
				}
			}
		}
		if !ok {
			continue
		}
		img := Image{Name: name, Version: version}
		for _, r := range rs {
			if r.Version != version {
				continue
			}
			if !slices.Contains(img.Architectures, r.Arch) {
				img.Architectures = append(img.Architectures, r.Arch)
			}
			if img.Metadata == (catalog.Metadata{}) {
				img.Metadata = r.Metadata
			}
		}
		slices.SortFunc(img.Architectures, func(a, b string) int { return archIndex(a) - archIndex(b) })
		images = append(images, img)
	}
	slices.SortFunc(images, func(a, b Image) int { return strings.Compare(a.Name, b.Name) })
	return images
}

func archIndex(a string) int {
	if i := slices.Index(Architectures, a); i >= 0 {
		return i
	}
	return len(Architectures)
}

// Generate renders a page for every image of rels and the index, sorted by
// file name, with the index last.
func Generate(rels []catalog.Release, opts Options) ([]Page, error) {
	if opts.Registry == "" {
		opts.Registry = DefaultRegistry
	}
	opts.Registry = strings.TrimSuffix(opts.Registry, "/")
	if opts.ImportSize == "" {
		opts.ImportSize = DefaultImportSize
	}
	images := Images(rels)
	var pages []Page
	for _, img := range images {
		content, err := RenderImage(img, opts)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", img.Name, err)
		}
		pages = append(pages, Page{Name: img.Name, File: img.Name + ".md", Content: content})
	}
	pages = append(pages, Page{File: IndexName, Content: RenderIndex(images)})
	return pages, nil
}

// defaultMemory is the guest memory of the example VM of an image that
// names no instancetype: what the common preferences require at most.
const defaultMemory = "2Gi"

// VirtualMachine returns the example VirtualMachine manifest of img as YAML.
func VirtualMachine(img Image, opts Options) ([]byte, error) {
	disks := []any{map[string]any{"name": "containerdisk", "disk": map[string]any{"bus": "virtio"}}}
	volumes := []any{map[string]any{
		"name":          "containerdisk",
		"containerDisk": map[string]any{"image": imageRef(img, opts)},
	}}
	if img.Metadata.UserData != "" {
		disks = append(disks, map[string]any{"name": "cloudinit", "disk": map[string]any{"bus": "virtio"}})
		volumes = append(volumes, map[string]any{
			"name":             "cloudinit",
			"cloudInitNoCloud": map[string]any{"userData": img.Metadata.UserData},
		})
	}
	domain := map[string]any{"devices": map[string]any{"disks": disks}}
	spec := map[string]any{
		"runStrategy": "Always",
		"template": map[string]any{
			"spec": map[string]any{
				"domain":  domain,
				"volumes": volumes,
			},
		},
	}
	if img.Metadata.Instancetype != "" {
		spec["instancetype"] = map[string]any{"name": img.Metadata.Instancetype}
	} else {
		// KubeVirt refuses to start a VM that requests no memory; the
		// instancetype gives it otherwise.
		domain["memory"] = map[string]any{"guest": defaultMemory}
	}
	if img.Metadata.Preference != "" {
		spec["preference"] = map[string]any{"name": img.Metadata.Preference}
	}
	vm := map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "VirtualMachine",
		"metadata":   map[string]any{"name": img.Name},
		"spec":       spec,
	}
	return yaml.Marshal(vm)
}

func imageRef(img Image, opts Options) string {
	return opts.Registry + "/" + img.Name + ":" + img.Version
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"hasNewline": func(s string) bool { return strings.HasSuffix(s, "\n") },
}).Parse(`# {{.Name}}

{{with .Metadata.Description}}{{.}}{{else}}A KubeVirt containerdisk of {{.Name}}.{{end}}

| | |
|---|---|
| Image | ` + "`{{.Ref}}`" + ` |
| Version | {{.Version}} |
| Architectures | {{.Archs}} |
{{- with .Metadata.DefaultUser}}
| Default user | ` + "`{{.}}`" + ` |{{end}}
{{- with .Metadata.Instancetype}}
| Instancetype | ` + "`{{.}}`" + ` |{{end}}
{{- with .Metadata.Preference}}
| Preference | ` + "`{{.}}`" + ` |{{end}}
| Boot | {{if .Metadata.EFI}}UEFI{{else}}BIOS or UEFI{{end}} |
| Guest agent | {{if .Metadata.GuestAgent}}yes{{else}}no{{end}} |

## Usage

Create a VirtualMachine that boots the containerdisk directly:

` + "```sh" + `
virtctl create vm --name {{.Name}}{{with .Metadata.Instancetype}} --instancetype {{.}}{{end}}{{with .Metadata.Preference}} --preference {{.}}{{end}} \
  --volume-containerdisk=src:{{.Ref}} | kubectl apply -f -
` + "```" + `

Or import it into a persistent disk first:

` + "```sh" + `
virtctl create vm --name {{.Name}}{{with .Metadata.Instancetype}} --instancetype {{.}}{{end}}{{with .Metadata.Preference}} --preference {{.}}{{end}} \
  --volume-import=type:registry,url:docker://{{.Ref}},size:{{.Size}} | kubectl apply -f -
` + "```" + `

The same VirtualMachine as a manifest:

` + "```yaml" + `
{{.VM}}` + "```" + `
{{- with .Metadata.UserData}}

## Example cloud-init user-data

` + "```yaml" + `
{{.}}{{if not (hasNewline .)}}
{{end}}` + "```" + `
{{- end}}
`))

// RenderImage renders the page of one image.
func RenderImage(img Image, opts Options) ([]byte, error) {
	if opts.Registry == "" {
		opts.Registry = DefaultRegistry
	}
	if opts.ImportSize == "" {
		opts.ImportSize = DefaultImportSize
	}
	vm, err := VirtualMachine(img, opts)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = pageTemplate.Execute(&buf, map[string]any{
		"Name":     img.Name,
		"Version":  img.Version,
		"Ref":      imageRef(img, opts),
		"Archs":    strings.Join(img.Architectures, ", "),
		"Metadata": img.Metadata,
		"Size":     opts.ImportSize,
		"VM":       string(vm),
	})
	return buf.Bytes(), err
}

// RenderIndex renders the table of images and the architectures each is
// built for.
func RenderIndex(images []Image) []byte {
	var b strings.Builder
	b.WriteString("# Containerdisks\n\nKubeVirt containerdisks of the curated distributions, newest stable version of each.\n\n")
	b.WriteString("| Image | Version |")
	for _, a := range Architectures {
		b.WriteString(" " + a + " |")
	}
	b.WriteString("\n|---|---|")
	for range Architectures {
		b.WriteString(":---:|")
	}
	b.WriteString("\n")
	for _, img := range images {
		fmt.Fprintf(&b, "| [%s](%s.md) | %s |", img.Name, img.Name, img.Version)
		for _, a := range Architectures {
			mark := "–"
			if slices.Contains(img.Architectures, a) {
				mark = "✓"
			}
			b.WriteString(" " + mark + " |")
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
