package catalogfile

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
)

// A catalog file comes from anyone, and its templates run in every
// command that reads it: they may only put fields together. Without
// loops, variables or nested templates, what a template does is bounded
// by its length; its output is bounded apart.
const (
	// maxTemplate bounds the text of one template: a URL template is
	// about 100 bytes.
	maxTemplate = 4 << 10
	// maxExpansion bounds what one template writes: a URL, a tag or a
	// build label.
	maxExpansion = 64 << 10
)

// allowedFuncs are the built-in template functions a catalog template may
// call: call is left out (the data has no functions), printf is checked
// apart.
var allowedFuncs = map[string]bool{
	"and": true, "or": true, "not": true, "eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
	"len": true, "index": true, "slice": true, "print": true, "println": true, "printf": true,
	"urlquery": true, "html": true, "js": true,
}

// parseTemplate parses a catalog template.
func parseTemplate(s string) (*template.Template, error) {
	return template.New("t").Option("missingkey=error").Parse(s)
}

// checkTemplate parses s and refuses what could make its execution
// unbounded: range, with, define, block and template actions, variables,
// functions other than allowedFuncs, and printf widths and precisions.
func checkTemplate(s string) error {
	if len(s) > maxTemplate {
		return fmt.Errorf("a template of %d bytes: expected at most %s (a URL or tag template is a line)", len(s), readlimit.Size(maxTemplate))
	}
	t, err := parseTemplate(s)
	if err != nil {
		return err
	}
	if len(t.Templates()) > 1 {
		return fmt.Errorf("%q: define and block are not allowed: expected fields such as {{.Version}}, {{if}} and simple functions", s)
	}
	if t.Tree == nil {
		return nil
	}
	return checkNode(t.Tree.Root)
}

var (
	// printfWidthRE matches a printf verb with a width, a precision or an
	// argument index.
	printfWidthRE = regexp.MustCompile(`%[-+# 0]*[0-9*.\[]`)
)

func checkNode(n parse.Node) error {
	refuse := func(what string) error {
		return fmt.Errorf("%s is not allowed: %q; expected fields such as {{.Version}}, {{if}} and simple functions (no loops, variables or nested templates)", what, n.String())
	}
	switch n := n.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNode(c); err != nil {
				return err
			}
		}
	case *parse.TextNode, *parse.CommentNode:
	case *parse.ActionNode:
		return checkPipe(n.Pipe, refuse)
	case *parse.IfNode:
		if err := checkPipe(n.Pipe, refuse); err != nil {
			return err
		}
		if err := checkNode(n.List); err != nil {
			return err
		}
		return checkNode(n.ElseList)
	case *parse.RangeNode:
		return refuse("range")
	case *parse.WithNode:
		return refuse("with")
	case *parse.TemplateNode:
		return refuse("template")
	default:
		return refuse(fmt.Sprintf("%T", n))
	}
	return nil
}

func checkPipe(p *parse.PipeNode, refuse func(string) error) error {
	if p == nil {
		return nil
	}
	if len(p.Decl) > 0 {
		return refuse("a variable")
	}
	for _, c := range p.Cmds {
		for i, a := range c.Args {
			switch a := a.(type) {
			case *parse.IdentifierNode:
				if !allowedFuncs[a.Ident] {
					return refuse("the function " + a.Ident)
				}
				if a.Ident == "printf" && i == 0 {
					if len(c.Args) < 2 {
						return refuse("printf without a format")
					}
					f, ok := c.Args[1].(*parse.StringNode)
					if !ok {
						return refuse("printf with a format that is not a quoted string")
					}
					if printfWidthRE.MatchString(strings.ReplaceAll(f.Text, "%%", "")) {
						return refuse("printf with a width or precision")
					}
				}
			case *parse.PipeNode:
				if err := checkPipe(a, refuse); err != nil {
					return err
				}
			case *parse.VariableNode:
				// Only $, the data, exists when nothing is declared.
			case *parse.FieldNode, *parse.ChainNode, *parse.DotNode, *parse.StringNode,
				*parse.NumberNode, *parse.BoolNode, *parse.NilNode:
				if ch, ok := a.(*parse.ChainNode); ok {
					if pn, ok := ch.Node.(*parse.PipeNode); ok {
						if err := checkPipe(pn, refuse); err != nil {
							return err
						}
					}
				}
			default:
				return refuse(fmt.Sprintf("%T", a))
			}
		}
	}
	return nil
}

// expansionError reports a template whose output is over maxExpansion.
type expansionError struct{}

func (*expansionError) Error() string {
	return fmt.Sprintf("the template writes more than %s: expected a URL, a tag or a label", readlimit.Size(maxExpansion))
}

// limitWriter collects a template's output, failing past limit bytes or
// once ctx is done.
type limitWriter struct {
	ctx   context.Context
	limit int
	b     strings.Builder
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if w.b.Len()+len(p) > w.limit {
		return 0, &expansionError{}
	}
	return w.b.Write(p)
}
