package apidocs_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The route set of the document and the route set of the handler must be
// the same. The handler's routes are not exported, so this is checked from
// both sides without reaching into functions' internals:
//
//  1. Every documented operation is served: the real handler, asked with
//     the operation's method and a well-formed path, does not answer 404
//     not_found (unknown route) or 405. (An authenticated route answers 401
//     to a request without a token; /auth/github answers 404
//     oauth_disabled, which is not not_found. Both prove the route exists.)
//  2. No undocumented method is served on a documented path: every other
//     method gets 405 with an Allow header naming exactly the documented
//     methods (with HEAD where GET is). A route added on an existing path,
//     e.g. DELETE /locks/{name}, fails here.
//  3. No undocumented path is registered: the Go source of functions and its
//     sub-packages (not apidocs) is parsed, and every ServeMux pattern in it
//     ("METHOD /path" string literals, or constant expressions building
//     one) must be a documented operation. A route added on a new path, e.g.
//     POST /locks/{name}/steal, fails here; apidocs' own patterns are held to
//     the document by TestRoutesMatchTheDocument.
//
// A route removed from the handler but left in the document fails (1).
//
// pendingWiring lists the documented paths that functions.New does not
// register yet (being written elsewhere): while a path of the list is wholly
// absent (every method answers 404 not_found) it is logged, not failed; once
// it is served, the test fails until it is removed from the list.
var pendingWiring = []string{}

func TestRouteSetMatchesTheHandler(t *testing.T) {
	app := newApp(t)
	doc := mustDoc(t)
	problems, pending := checkRouteSet(app.api, doc)
	for _, p := range pending {
		t.Logf("PENDING: functions.New does not register %s yet (see pendingWiring)", p)
	}
	for _, p := range problems {
		t.Error(p)
	}

	patterns := sourcePatterns(t, "..")
	if len(patterns) < 5 {
		t.Fatalf("found only %d route patterns in functions' source (%q): the scan is broken", len(patterns), patterns)
	}
	for _, p := range undocumentedPatterns(patterns, doc) {
		t.Error(p)
	}
	t.Logf("route patterns found in functions' source: %d", len(patterns))
}

// TestRouteSetCheckCatches shows that checkRouteSet and the source scan
// report a route added to the handler and not the document, and a
// documented route the handler lost.
func TestRouteSetCheckCatches(t *testing.T) {
	app := newApp(t)
	doc := mustDoc(t)
	extraMethod := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/locks/") {
			w.WriteHeader(http.StatusOK)
			return
		}
		app.api.ServeHTTP(w, r)
	})
	lostRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			r = r.Clone(r.Context())
			r.URL.Path = "/gone"
		}
		app.api.ServeHTTP(w, r)
	})
	for name, h := range map[string]http.Handler{"an undocumented method": extraMethod, "a lost route": lostRoute} {
		if problems, _ := checkRouteSet(h, doc); len(problems) == 0 {
			t.Errorf("%s is not reported", name)
		} else {
			t.Logf("%s: %s", name, problems[0])
		}
	}

	dir := t.TempDir()
	src := `package x

const stealPath = "/locks/{name}/steal"

func routes() []route {
	return []route{
		{"GET /locks", true, nil},
		{"POST " + stealPath, true, nil},
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	patterns := sourcePatterns(t, dir)
	var got []string
	for _, p := range patterns {
		got = append(got, p.pattern)
	}
	if !slices.Equal(got, []string{"GET /locks", "POST /locks/{name}/steal"}) {
		t.Errorf("sourcePatterns found %q", got)
	}
	if u := undocumentedPatterns(patterns, doc); len(u) != 1 || !strings.Contains(u[0], "steal") {
		t.Errorf("undocumentedPatterns = %q, want the steal route alone", u)
	}
}

// checkRouteSet checks points 1 and 2 above on h. It returns the problems,
// and the pendingWiring paths h does not serve yet.
func checkRouteSet(h http.Handler, doc *openapi3.T) (problems, pending []string) {
	probe := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	errCode := func(rec *httptest.ResponseRecorder) string {
		var e struct{ Code string }
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		return e.Code
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		var concrete []string
		if path == "/docs/{asset}" {
			for _, a := range item.Get.Parameters.GetByInAndName("path", "asset").Schema.Value.Enum {
				concrete = append(concrete, "/docs/"+a.(string))
			}
		} else {
			concrete = []string{strings.ReplaceAll(path, "{name}", "probe-lock")}
		}
		var allowed []string
		for m := range item.Operations() {
			allowed = append(allowed, m)
			if m == http.MethodGet {
				allowed = append(allowed, http.MethodHead)
			}
		}
		sort.Strings(allowed)
		if slices.Contains(pendingWiring, path) {
			absent := true
			for _, m := range methods {
				if rec := probe(m, concrete[0]); rec.Code != http.StatusNotFound || m != http.MethodHead && errCode(rec) != "not_found" {
					absent = false
				}
			}
			if absent {
				pending = append(pending, path)
				continue
			}
			problems = append(problems, path+" is in pendingWiring but functions.New serves it now: remove it from the list")
		}
		for _, p := range concrete {
			for _, m := range methods {
				rec := probe(m, p)
				if slices.Contains(allowed, m) {
					// A HEAD answer has no body to read the code from: GET's
					// answer says whether the path is unknown (not_found) or a
					// served route answering 404 (oauth_disabled).
					codeOf := rec
					if m == http.MethodHead {
						codeOf = probe(http.MethodGet, p)
					}
					if rec.Code == http.StatusMethodNotAllowed || rec.Code == http.StatusNotFound && errCode(codeOf) == "not_found" {
						problems = append(problems, fmt.Sprintf("%s %s is documented but the handler answers %d %s", m, p, rec.Code, errCode(rec)))
					}
					continue
				}
				if rec.Code != http.StatusMethodNotAllowed {
					problems = append(problems, fmt.Sprintf("%s %s is not documented but the handler answers %d, not 405", m, p, rec.Code))
					continue
				}
				if got := splitAllow(rec.Header().Get("Allow")); !slices.Equal(got, allowed) {
					problems = append(problems, fmt.Sprintf("%s %s: Allow %q, the document has %q", m, p, got, allowed))
				}
			}
		}
	}
	return problems, pending
}

// undocumentedPatterns returns a problem for each pattern that is not a
// documented operation.
func undocumentedPatterns(patterns []sourcePattern, doc *openapi3.T) []string {
	ops := operations(doc)
	var out []string
	for _, p := range patterns {
		if ops[p.pattern] == nil {
			out = append(out, fmt.Sprintf("%s registers %q, which the document does not have", p.where, p.pattern))
		}
	}
	return out
}

func splitAllow(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

type sourcePattern struct {
	pattern string // as the document spells it: "GET /locks/{name}"
	where   string
}

var muxPattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|CONNECT|TRACE) (/\S*)$`)

// sourcePatterns parses the non-test Go files of dir and of its
// sub-directories except apidocs, and returns every string constant
// expression shaped like a ServeMux pattern with a method.
func sourcePatterns(t *testing.T, dir string) []sourcePattern {
	t.Helper()
	var files []string
	for _, glob := range []string{"*.go", "*/*.go"} {
		m, err := filepath.Glob(filepath.Join(dir, glob))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	consts := map[string]string{} // constant name → string value, across the packages
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.Contains(filepath.ToSlash(f), "/apidocs/") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, file)
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							if s, err := strconv.Unquote(lit.Value); err == nil {
								consts[name.Name] = s
							}
						}
					}
				}
			}
		}
	}
	// eval folds string literals, constants and + into a string.
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			s, ok := consts[e.Name]
			return s, ok
		case *ast.SelectorExpr:
			s, ok := consts[e.Sel.Name]
			return s, ok
		case *ast.ParenExpr:
			return eval(e.X)
		case *ast.BinaryExpr:
			if e.Op != token.ADD {
				return "", false
			}
			a, ok1 := eval(e.X)
			b, ok2 := eval(e.Y)
			return a + b, ok1 && ok2
		}
		return "", false
	}
	seen := map[string]bool{}
	var out []sourcePattern
	for _, file := range parsed {
		ast.Inspect(file, func(n ast.Node) bool {
			e, ok := n.(ast.Expr)
			if !ok {
				return true
			}
			s, ok := eval(e)
			if !ok {
				return true
			}
			m := muxPattern.FindStringSubmatch(s)
			if m == nil {
				return true
			}
			p := m[1] + " " + docPath(m[2])
			if !seen[p] {
				seen[p] = true
				out = append(out, sourcePattern{pattern: p, where: fset.Position(e.Pos()).String()})
			}
			return false
		})
	}
	return out
}

// docPath turns a ServeMux path into the document's spelling: {$} and
// trailing "..." wildcards dropped to their plain form.
func docPath(p string) string {
	p = strings.TrimSuffix(p, "{$}")
	return strings.ReplaceAll(p, "...}", "}")
}
