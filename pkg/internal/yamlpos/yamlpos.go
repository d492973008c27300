// Package yamlpos decodes YAML files that users write into Go structs,
// strictly (an unknown key is an error), and keeps where each value was,
// so that every error, from decoding or from the checks that follow, names
// the file, the line and the key: "sync.yaml:12: units[0].images[1].allow:
// invalid regex ...". It is the one YAML reader of the mirror
// configuration and the catalog file.
//
// A struct's fields are its keys, named by their yaml tag (yaml:"-" and
// unexported fields are not keys). A field may add:
//
//   - want:"…": what the value should be, for "expected …, got …" (the
//     default names the keys of a struct, or says a string, a list, true or
//     false, a whole number);
//   - item:"…": what each item of a list or value of a map should be; a
//     list's want is then "a list of …";
//   - count:"…": see Decoder.Count;
//   - yaml:"name,secret": the value is never quoted in a message;
//   - yaml:"name,hidden": a key that decodes but that messages do not
//     offer (an old or foreign key that the caller reports itself).
//
// Strings take any scalar but null (a number keeps its spelling, "41.10"),
// booleans take true or false only, integers whole numbers only, a pointer
// is nil for a missing or null value, and a *yaml.Node field takes the
// value as it is. Map keeps a mapping's entries in file order, with their
// lines. Aliases, anchors and merge keys (<<: *common) work, each use of an
// alias counted against Decoder.MaxNodes.
//
// A nested block is one more struct: decoding
//
//	type customize struct {
//		Packages []string `yaml:"packages" item:"package names"`
//		Run      []step   `yaml:"run" want:"a list of steps"`
//	}
//	type step struct {
//		Command string `yaml:"command" want:"a shell command"`
//	}
//
// into a field Customize *customize tagged yaml:"customize" refuses
// "customize: {packges: [vim]}" with "f.yaml:3: entries[0].customize.packges:
// unknown key: expected packages or run", and a check after decoding
// reports a value that decoded fine at its place with
// d.Report(d.Line("entries[0].customize.run[1].command"), key, msg, nil).
package yamlpos

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one error in a file: where it is and what is wrong.
type Error struct {
	// File, Line and Key say where: Key is a path such as
	// "units[0].images[1].allow".
	File string
	Line int
	Key  string
	// Msg says what is wrong and what was expected.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// DefaultMaxNodes is Decoder.MaxNodes when it is zero.
const DefaultMaxNodes = 1_000_000

// Decoder decodes one file and collects its errors, all of them, with the
// positions of the values it decoded. The zero value with File set is
// ready to use.
type Decoder struct {
	// File names the file in messages.
	File string
	// What names the document in messages, "the configuration" by
	// default.
	What string
	// MaxNodes bounds the mapping entries and list items decoded, each
	// use of an alias counted again, so that aliases of aliases cannot
	// make a small file cost billions; DefaultMaxNodes when zero.
	MaxNodes int
	// Count, if set, is asked before the items of a list or the entries
	// of a map whose field has a count tag are decoded: count:"tags"
	// names them, count:"repositories,tags" names a map's entries and the
	// items of each of its values. When it returns false (it reports
	// why), the value is left out, so that a bound on what a file may
	// list holds before any of it is decoded.
	Count func(path, what string, n int) bool

	errs  []*Error
	nodes int
	over  bool
	pos   map[string]position
}

// position is where a value is: its key's line and its own, and for a
// list of scalars its items' lines, negative for an item that did not
// decode (a map entry each would cost more than the items themselves).
type position struct {
	key, val int
	failed   bool
	items    []int
}

// lookup returns the position of path.
func (d *Decoder) lookup(path string) (position, bool) {
	if p, ok := d.pos[path]; ok {
		return p, true
	}
	if i := strings.LastIndexByte(path, '['); i >= 0 && strings.HasSuffix(path, "]") {
		if p, ok := d.pos[path[:i]]; ok {
			if n, err := strconv.Atoi(path[i+1 : len(path)-1]); err == nil && n >= 0 && n < len(p.items) {
				line := p.items[n]
				return position{val: max(line, -line), failed: line < 0}, true
			}
		}
	}
	return position{}, false
}

// Parse reads data as one YAML document and returns its top node, nil for
// a document without one (empty, or only comments).
func (d *Decoder) Parse(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, d.syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: d.File, Line: extra.Line, Msg: fmt.Sprintf("a second YAML document: expected one %s per file", strings.TrimPrefix(d.what(), "the "))}
	case !errors.Is(err, io.EOF):
		return nil, d.syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return resolve(doc.Content[0]), nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError is a YAML syntax error with its line.
func (d *Decoder) syntaxError(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: d.File, Line: line, Msg: "invalid YAML: " + msg, Err: err}
}

func (d *Decoder) what() string {
	if d.What == "" {
		return "the configuration"
	}
	return d.What
}

// Decode decodes n, found at path ("" for the top), into v, a pointer,
// and reports whether it added no error.
func (d *Decoder) Decode(n *yaml.Node, path string, v any) bool {
	before := len(d.errs)
	d.decode(n, path, path, reflect.ValueOf(v).Elem(), field{})
	return len(d.errs) == before && !d.over
}

// Report adds an error at line about key.
func (d *Decoder) Report(line int, key, msg string, err error) {
	if d.over {
		return
	}
	d.errs = append(d.errs, &Error{File: d.File, Line: line, Key: key, Msg: msg, Err: err})
}

// Has reports whether the file sets path.
func (d *Decoder) Has(path string) bool {
	_, ok := d.lookup(path)
	return ok
}

// OK reports whether the file sets path to a value that decoded.
func (d *Decoder) OK(path string) bool {
	p, ok := d.lookup(path)
	return ok && !p.failed
}

// Line returns the line of the value at path, or of the nearest value
// around it that the file sets: a missing key is reported where its
// mapping is.
func (d *Decoder) Line(path string) int {
	for {
		if p, ok := d.lookup(path); ok {
			return p.val
		}
		if path == "" {
			return 0
		}
		path = Parent(path)
	}
}

// KeyLine returns the line of the key of path, or Line(path) for a list
// item or a key the file does not set.
func (d *Decoder) KeyLine(path string) int {
	if p, ok := d.lookup(path); ok && p.key > 0 {
		return p.key
	}
	return d.Line(path)
}

// Errors returns the errors found so far, in line order.
func (d *Decoder) Errors() []*Error {
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	return d.errs
}

// Err joins the errors found, in line order, or returns nil.
func (d *Decoder) Err() error {
	errs := d.Errors()
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// Join returns the path of key in the mapping at path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index returns the path of item i of the list at path.
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Over reports whether the file went over MaxNodes: what was decoded is
// then incomplete, and the one error is about the limit.
func (d *Decoder) Over() bool { return d.over }

// Parent returns the path of the mapping or list that holds path. A key
// with a dot in it ("quay.io") reads as two, which only makes Line look
// one step further.
func Parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// Entry is a key of a mapping and its value.
type Entry[T any] struct {
	Key string
	// Line is the key's line.
	Line  int
	Value T
}

// Map is a mapping with its entries in file order: a mapping whose keys
// are names (registry hosts, repositories).
type Map[T any] []Entry[T]

func (m *Map[T]) decodeMap(d *Decoder, pairs []pair, path string, item field) {
	for _, kv := range pairs {
		e := Entry[T]{Key: kv.key.Value, Line: kv.key.Line}
		p := Join(path, e.Key)
		d.decode(kv.val, p, p, reflect.ValueOf(&e.Value).Elem(), itemField(reflect.TypeFor[T](), item))
		d.setKeyLine(p, kv.key.Line)
		*m = append(*m, e)
	}
}

type mapDecoder interface {
	decodeMap(d *Decoder, pairs []pair, path string, item field)
}

// field is what a struct tag says of a value.
type field struct {
	want, item, count string
	secret, hidden    bool
}

var nodeType = reflect.TypeFor[*yaml.Node]()

// decode decodes n into v, at path; key names it in messages (a list of
// scalars reports its items under its own key).
func (d *Decoder) decode(n *yaml.Node, path, key string, v reflect.Value, f field) {
	if d.over {
		return
	}
	n = resolve(n)
	if d.pos == nil {
		d.pos = map[string]position{}
	}
	d.pos[path] = position{val: n.Line}
	fail := func(what string) {
		d.failed(path)
		d.Report(n.Line, key, fmt.Sprintf("expected %s, got %s", what, describe(n, f.secret)), nil)
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(n))
		return
	}
	// mapping gives the pairs of a mapping of key/value entries, checked
	// against the entry count the field allows.
	mapping := func() ([]pair, bool) {
		if n.Kind != yaml.MappingNode {
			fail(cmp.Or(f.want, "a mapping"))
			return nil, false
		}
		pairs := d.pairs(n, path)
		return pairs, d.counted(path, f, len(pairs))
	}
	if m, ok := v.Addr().Interface().(mapDecoder); ok {
		if pairs, ok := mapping(); ok {
			m.decodeMap(d, pairs, path, f)
		}
		return
	}
	if v.Kind() == reflect.Pointer {
		if isNull(n) {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		d.decode(n, path, key, v.Elem(), f)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		fields := structFields(v.Type())
		if n.Kind != yaml.MappingNode {
			var names []string
			for _, sf := range fields {
				if !sf.hidden {
					names = append(names, sf.name)
				}
			}
			fail(cmp.Or(f.want, "a mapping with the keys "+strings.Join(names, ", ")))
			return
		}
		for _, kv := range d.pairs(n, path) {
			k := kv.key.Value
			p := Join(path, k)
			i := slices.IndexFunc(fields, func(sf structField) bool { return sf.name == k })
			if i < 0 {
				d.Report(kv.key.Line, p, "unknown key: expected "+orList(fields), nil)
				continue
			}
			sf := fields[i]
			d.decode(kv.val, p, p, v.Field(sf.index), sf.field)
			d.setKeyLine(p, kv.key.Line)
		}
	case reflect.Map:
		pairs, ok := mapping()
		if !ok {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(pairs))
		for _, kv := range pairs {
			p := Join(path, kv.key.Value)
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(kv.val, p, p, e, itemField(e.Type(), f))
			d.setKeyLine(p, kv.key.Line)
			m.SetMapIndex(reflect.ValueOf(kv.key.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.Slice:
		item := cmp.Or(f.item, "items")
		if n.Kind != yaml.SequenceNode {
			fail(cmp.Or(f.want, "a list of "+item))
			return
		}
		if !d.count(n, len(n.Content)) || !d.counted(path, f, len(n.Content)) {
			return
		}
		et := v.Type().Elem()
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		if !isScalar(et.Kind()) {
			for i, e := range n.Content {
				p := Index(path, i)
				d.decode(e, p, p, s.Index(i), itemField(et, f))
			}
			v.Set(s)
			return
		}
		// A list of scalars reports its items under its own key.
		items := make([]int, len(n.Content))
		for i, e := range n.Content {
			e = resolve(e)
			items[i] = e.Line
			if !d.scalar(e, key, s.Index(i), itemField(et, f)) {
				items[i] = -e.Line
			}
		}
		p := d.pos[path]
		p.items = items
		d.pos[path] = p
		v.Set(s)
	default:
		if !d.scalar(n, key, v, f) {
			d.failed(path)
		}
	}
}

func isScalar(k reflect.Kind) bool {
	return k == reflect.String || k == reflect.Bool || k == reflect.Int || k == reflect.Int64
}

// scalar decodes n into v, a string, bool or int, and reports whether it
// could.
func (d *Decoder) scalar(n *yaml.Node, key string, v reflect.Value, f field) bool {
	var want string
	switch v.Kind() {
	case reflect.String:
		if n.Kind == yaml.ScalarNode && !isNull(n) {
			v.SetString(n.Value)
			return true
		}
		want = cmp.Or(f.want, "a string")
	case reflect.Bool:
		var b bool
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" && n.Decode(&b) == nil {
			v.SetBool(b)
			return true
		}
		want = "true or false"
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Decode(&i) == nil && !v.OverflowInt(i) {
			v.SetInt(i)
			return true
		}
		want = cmp.Or(f.want, "a whole number")
	default:
		// A type this package does not read is a mistake in the caller's
		// struct, said at the key that uses it.
		d.Report(n.Line, key, fmt.Sprintf("cannot decode into a Go %s", v.Type()), nil)
		return false
	}
	d.Report(n.Line, key, fmt.Sprintf("expected %s, got %s", want, describe(n, f.secret)), nil)
	return false
}

// counted asks Count whether the n items of the value of field f at path
// may be decoded.
func (d *Decoder) counted(path string, f field, n int) bool {
	what, _, _ := strings.Cut(f.count, ",")
	if what == "" || d.Count == nil || d.Count(path, what, n) {
		return true
	}
	d.failed(path)
	return false
}

func (d *Decoder) failed(path string) {
	p := d.pos[path]
	p.failed = true
	d.pos[path] = p
}

func (d *Decoder) setKeyLine(path string, line int) {
	if p, ok := d.pos[path]; ok {
		p.key = line
		d.pos[path] = p
	}
}

// itemField is what the tag of a list or map field f says of each of its
// values, of type t: a list's items are its item.
func itemField(t reflect.Type, f field) field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	_, count, _ := strings.Cut(f.count, ",")
	if t.Kind() == reflect.Slice {
		return field{item: f.item, count: count, secret: f.secret}
	}
	return field{want: f.item, count: count, secret: f.secret}
}

type structField struct {
	name  string
	index int
	field
}

func structFields(t reflect.Type) []structField {
	var out []structField
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f := structField{name: name, index: i, field: field{want: sf.Tag.Get("want"), item: sf.Tag.Get("item"), count: sf.Tag.Get("count")}}
		for o := range strings.SplitSeq(opts, ",") {
			f.secret = f.secret || o == "secret"
			f.hidden = f.hidden || o == "hidden"
		}
		out = append(out, f)
	}
	return out
}

func orList(fields []structField) string {
	var keys []string
	for _, f := range fields {
		if !f.hidden {
			keys = append(keys, f.name)
		}
	}
	if len(keys) <= 1 {
		return strings.Join(keys, "")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
}

// count adds n nodes decoded and reports whether the decoder may go on;
// the first time it may not, its error replaces the others, as what is
// decoded after it is incomplete.
func (d *Decoder) count(at *yaml.Node, n int) bool {
	if d.over {
		return false
	}
	d.nodes += n
	if d.nodes > cmp.Or(d.MaxNodes, DefaultMaxNodes) {
		d.errs = []*Error{{File: d.File, Line: at.Line, Msg: fmt.Sprintf("%s has more than %d entries (aliases counted at each use): expected fewer", d.what(), cmp.Or(d.MaxNodes, DefaultMaxNodes))}}
		d.over = true
		return false
	}
	return true
}

// pair is a key and its value in a YAML mapping.
type pair struct{ key, val *yaml.Node }

// pairs returns the keys and values of mapping n, with merge keys (<<)
// expanded: keys written in n win over merged ones, and earlier merged
// mappings over later ones. It reports duplicate and non-string keys.
func (d *Decoder) pairs(n *yaml.Node, path string) []pair {
	var out []pair
	seen := map[string]int{}
	visited := map[*yaml.Node]bool{}
	var walk func(m *yaml.Node, explicit bool)
	walk = func(m *yaml.Node, explicit bool) {
		if visited[m] || !d.count(m, len(m.Content)/2) {
			return
		}
		visited[m] = true
		var merges []*yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := resolve(m.Content[i]), m.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			if k.Kind != yaml.ScalarNode {
				d.Report(k.Line, path, fmt.Sprintf("a key is %s: expected a string", describe(k, false)), nil)
				continue
			}
			if line, dup := seen[k.Value]; dup {
				if explicit {
					d.Report(k.Line, Join(path, k.Value), fmt.Sprintf("duplicate key: it is set on line %d too", line), nil)
				}
				continue
			}
			seen[k.Value] = k.Line
			out = append(out, pair{k, v})
		}
		for _, v := range merges {
			v = resolve(v)
			maps := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				maps = maps[:0]
				for _, e := range v.Content {
					maps = append(maps, resolve(e))
				}
			}
			for _, mm := range maps {
				if mm.Kind != yaml.MappingNode {
					d.Report(mm.Line, Join(path, "<<"), fmt.Sprintf("merges %s: expected a mapping or a list of mappings", describe(mm, false)), nil)
					continue
				}
				walk(mm, false)
			}
		}
	}
	walk(n, true)
	return out
}

// Keys returns the keys of mapping n, merged ones included, without
// reporting anything: for telling formats apart before decoding.
func Keys(n *yaml.Node) []string {
	d := &Decoder{}
	var keys []string
	for _, kv := range d.pairs(resolve(n), "") {
		keys = append(keys, kv.key.Value)
	}
	return keys
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe names a YAML value for messages: "a mapping", "a list",
// "nothing", "the number 4", or a quoted string.
func Describe(n *yaml.Node) string { return describe(n, false) }

func describe(n *yaml.Node, secret bool) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); {
		case tag == "!!null":
			return "nothing"
		case secret:
			return "a single value (not shown: it may hold a secret)"
		case tag == "!!bool":
			return "the boolean " + n.Value
		case tag == "!!int" || tag == "!!float":
			return "the number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "a YAML document"
}
