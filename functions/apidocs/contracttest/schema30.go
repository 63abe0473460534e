package contracttest

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// For an OpenAPI 3.1 document, kin-openapi validates each value with a JSON
// Schema 2020-12 validator that it compiles anew on every call, regular
// expressions included: that compile was half of the CPU of the suites that
// go through a Validator, and made a linearizability history seven to ten
// times slower. The document needs none of 2020-12's own keywords but const,
// and const x is enum [x] in every draft. So requests and answers are
// checked against a second copy of the document, parsed for that alone, in
// which each const is rewritten as a one-value enum and the version is
// 3.0.3: kin-openapi then uses its own validator, which needs no compile.
// TestFastSchemasAgreeWith2020 holds the two to the same verdicts.

// validationDocument parses doc into that second copy, without its
// servers, and returns it with a router to its operations. It fails if a
// schema uses a keyword the 3.0 validator would not check the same way, so
// a document that starts using one is not checked more loosely without
// notice.
func validationDocument(doc []byte) (*openapi3.T, routers.Router, error) {
	d, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the document: %w", err)
	}
	d.Servers = nil
	err = forEachSchema(d, func(s *openapi3.Schema) error {
		if has2020Keyword(s) || s.Type != nil && len(*s.Type) > 1 {
			// Most schemas have no title, so the schema itself says which.
			b, _ := json.Marshal(s)
			return fmt.Errorf("the schema %.300s uses a JSON Schema 2020-12 keyword or a type list, which contracttest's 3.0 validation copy cannot check; see schema30.go", b)
		}
		if s.Const != nil {
			s.Enum = []any{s.Const}
			s.Const = nil
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// The router validates the document, as 3.1 (the copy still has 3.1's
	// annotations, such as examples); the routes it returns point to d, so
	// the version set afterwards is the one validation sees.
	r, err := legacy.NewRouter(d)
	if err != nil {
		return nil, nil, fmt.Errorf("building the router: %w", err)
	}
	d.OpenAPI = "3.0.3"
	return d, r, nil
}

// has2020Keyword reports whether s itself uses a JSON Schema 2020-12 keyword
// other than const and type lists (kin-openapi's list of the keywords its 3.0 validator
// ignores).
func has2020Keyword(s *openapi3.Schema) bool {
	return len(s.PrefixItems) != 0 || s.Contains != nil ||
		len(s.PatternProperties) != 0 || len(s.DependentSchemas) != 0 ||
		s.PropertyNames != nil ||
		s.UnevaluatedItems.Has != nil || s.UnevaluatedItems.Schema != nil ||
		s.UnevaluatedProperties.Has != nil || s.UnevaluatedProperties.Schema != nil ||
		s.If != nil || s.Then != nil || s.Else != nil ||
		len(s.DependentRequired) != 0 || len(s.Defs) != 0 || s.ContentSchema != nil
}

// forEachSchema calls fn once for every schema of d: those of its
// components and those inline in its paths (parameters, headers, request
// and response bodies), with everything they reach, and returns every error
// fn returned, joined.
func forEachSchema(d *openapi3.T, fn func(*openapi3.Schema) error) error {
	seen := map[*openapi3.Schema]bool{}
	visit := func(ref *openapi3.SchemaRef) error {
		if ref == nil || ref.Value == nil {
			return nil
		}
		return ref.WalkSubtree(func(_ string, r *openapi3.SchemaRef) error {
			if r.Value == nil || seen[r.Value] {
				return nil
			}
			seen[r.Value] = true
			return fn(r.Value)
		})
	}
	content := func(c openapi3.Content) error {
		for _, mt := range c {
			if mt != nil {
				if err := visit(mt.Schema); err != nil {
					return err
				}
			}
		}
		return nil
	}
	param := func(p *openapi3.Parameter) error {
		if p == nil {
			return nil
		}
		if err := visit(p.Schema); err != nil {
			return err
		}
		return content(p.Content)
	}
	response := func(r *openapi3.Response) error {
		if r == nil {
			return nil
		}
		for _, h := range r.Headers {
			if h != nil && h.Value != nil {
				if err := param(&h.Value.Parameter); err != nil {
					return err
				}
			}
		}
		return content(r.Content)
	}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if c := d.Components; c != nil {
		for _, s := range c.Schemas {
			add(visit(s))
		}
		for _, p := range c.Parameters {
			if p != nil {
				add(param(p.Value))
			}
		}
		for _, h := range c.Headers {
			if h != nil && h.Value != nil {
				add(param(&h.Value.Parameter))
			}
		}
		for _, b := range c.RequestBodies {
			if b != nil && b.Value != nil {
				add(content(b.Value.Content))
			}
		}
		for _, r := range c.Responses {
			if r != nil {
				add(response(r.Value))
			}
		}
	}
	if d.Paths != nil {
		for _, item := range d.Paths.Map() {
			for _, p := range item.Parameters {
				if p != nil {
					add(param(p.Value))
				}
			}
			for _, op := range item.Operations() {
				for _, p := range op.Parameters {
					if p != nil {
						add(param(p.Value))
					}
				}
				if op.RequestBody != nil && op.RequestBody.Value != nil {
					add(content(op.RequestBody.Value.Content))
				}
				if op.Responses != nil {
					for _, r := range op.Responses.Map() {
						add(response(r.Value))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}
