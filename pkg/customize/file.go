package customize

import (
	"errors"
	"fmt"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/yamlpos"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
)

// ParseFile reads a spec file: the keys of a catalog entry's customize:
// block at the top level. It is decoded strictly, and every error, from
// decoding or from Validate, names the file, the line and the key
// ("spec.yaml:3: commands[1]: unknown virt-customize command …").
func ParseFile(name string, data []byte) (Spec, error) {
	if err := readlimit.CheckYAML(name, data, readlimit.YAMLEntries, "a customize spec"); err != nil {
		return Spec{}, err
	}
	d := &yamlpos.Decoder{File: name, What: "the customize spec"}
	root, err := d.Parse(data)
	if err != nil {
		return Spec{}, err
	}
	var s Spec
	if root == nil {
		return s, nil
	}
	if !d.Decode(root, "", &s) {
		return Spec{}, d.Errors()[0]
	}
	err = s.Validate()
	if err == nil {
		return s, nil
	}
	// Validate joins one *FieldError per problem; the first is reported,
	// at its field's line, as the catalog file reports its own.
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fe *FieldError
	if !errors.As(errs[0], &fe) {
		return Spec{}, fmt.Errorf("%s: %w", name, err)
	}
	return Spec{}, &yamlpos.Error{File: name, Line: d.Line(fe.Field), Key: fe.Field, Msg: fe.Msg, Err: fe}
}
