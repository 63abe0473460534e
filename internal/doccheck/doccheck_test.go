package doccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// root is the repository's top directory, from this package's.
const root = "../.."

// TestEveryExportedNameHasDocComment parses every non-test Go file of the
// repository (both modules, the benchmark tools included) and reports each
// package without a package comment and each exported function, method
// (of an exported type), type, constant and variable without a doc
// comment that starts with its name. A constant or variable in a
// parenthesised group may be covered by the group's comment instead.
func TestEveryExportedNameHasDocComment(t *testing.T) {
	pkgs, err := parseTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found %d packages under %s; the walk is broken", len(pkgs), root)
	}
	var missing []string
	for _, dir := range sortedKeys(pkgs) {
		missing = append(missing, undocumented(dir, pkgs[dir])...)
	}
	for _, m := range missing {
		t.Error(m)
	}
}

// TestCheckerFindsEveryKind runs the checker on a package written to break
// each rule once, so that the test above cannot pass by finding nothing.
func TestCheckerFindsEveryKind(t *testing.T) {
	dir := t.TempDir()
	src := `package bad

// not the name
func Exported() {}

func Bare() {}

type T struct{}

func (T) Method() {}

// Method2 is documented.
func (T) Method2() {}

type hidden struct{}

func (hidden) Exported() {}

const C = 1

// Group of values.
const (
	D = 2
	E = 3
)

var (
	V = 1
	// W is documented.
	W = 2
)

// A X is fine: an article may come first.
type X int

func unexported() {}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := parseTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := undocumented(dir, pkgs[dir])
	want := []string{
		"package bad: no package comment",
		"function Exported: comment does not start with its name",
		"function Bare: no doc comment",
		"type T: no doc comment",
		"method T.Method: no doc comment",
		"const C: no doc comment",
		"var V: no doc comment",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d findings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasSuffix(got[i], want[i]) {
			t.Errorf("finding %d = %q, want it to end in %q", i, got[i], want[i])
		}
	}
}

// file is a parsed Go file and its path.
type file struct {
	path string
	ast  *ast.File
}

// parseTree parses the non-test Go files under top, skipping hidden
// directories and testdata, into one entry per directory.
func parseTree(top string) (map[string][]file, error) {
	fset := token.NewFileSet()
	pkgs := map[string][]file{}
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != top && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		pkgs[dir] = append(pkgs[dir], file{path, f})
		return nil
	})
	return pkgs, err
}

// undocumented lists the findings in the files of the package in dir, as
// "path: what".
func undocumented(dir string, files []file) []string {
	var out []string
	hasPkgDoc := false
	for _, f := range files {
		hasPkgDoc = hasPkgDoc || f.ast.Doc != nil
	}
	if !hasPkgDoc && len(files) > 0 {
		out = append(out, dir+": package "+files[0].ast.Name.Name+": no package comment")
	}
	for _, f := range files {
		for _, decl := range f.ast.Decls {
			for _, finding := range declFindings(decl) {
				out = append(out, f.path+": "+finding)
			}
		}
	}
	return out
}

// declFindings checks one top-level declaration.
func declFindings(decl ast.Decl) []string {
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			return nil
		}
		kind, name := "function", d.Name.Name
		if d.Recv != nil {
			recv := receiverType(d.Recv.List[0].Type)
			if !ast.IsExported(recv) {
				return nil
			}
			kind, name = "method", recv+"."+d.Name.Name
		}
		return check(kind, name, d.Name.Name, d.Doc)
	case *ast.GenDecl:
		var out []string
		grouped := d.Lparen.IsValid()
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				doc := s.Doc
				if doc == nil && !grouped {
					doc = d.Doc
				}
				if s.Name.IsExported() {
					out = append(out, check("type", s.Name.Name, s.Name.Name, doc)...)
				}
			case *ast.ValueSpec:
				n := firstExported(s.Names)
				switch {
				case n == nil:
				case s.Doc != nil:
					out = append(out, check(d.Tok.String(), n.Name, n.Name, s.Doc)...)
				case grouped && d.Doc != nil:
					// The group's comment covers its members.
				default:
					out = append(out, check(d.Tok.String(), n.Name, n.Name, d.Doc)...)
				}
			}
		}
		return out
	}
	return nil
}

// check reports a missing doc comment, or one that does not start with
// name (after an optional "A", "An" or "The").
func check(kind, label, name string, doc *ast.CommentGroup) []string {
	if doc == nil {
		return []string{kind + " " + label + ": no doc comment"}
	}
	text := doc.Text()
	for _, article := range []string{"A ", "An ", "The "} {
		text = strings.TrimPrefix(text, article)
	}
	if !strings.HasPrefix(text, name) {
		return []string{kind + " " + label + ": comment does not start with its name"}
	}
	return nil
}

// receiverType is the name of a method's receiver type (T, *T, T[P]).
func receiverType(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return receiverType(x.X)
	case *ast.IndexExpr:
		return receiverType(x.X)
	case *ast.IndexListExpr:
		return receiverType(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

// firstExported is the first exported name of a value spec (a, B = …
// needs one comment, which names B), or nil.
func firstExported(names []*ast.Ident) *ast.Ident {
	for _, n := range names {
		if n.IsExported() {
			return n
		}
	}
	return nil
}

func sortedKeys(m map[string][]file) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
