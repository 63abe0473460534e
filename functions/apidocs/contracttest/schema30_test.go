package contracttest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/octostore/octostore/functions/apidocs"
)

// schemaPair is one schema of the document as published (3.1, checked by
// kin-openapi with JSON Schema 2020-12) and the same schema in the
// validation copy.
type schemaPair struct {
	where      string
	slow, fast *openapi3.Schema
}

// pairs returns every schema of the published document that a value is
// checked against on its own (a component schema, a parameter's, a
// header's, a request or answer body's), each with its twin in the
// validation copy, found by the same path through both. Schemas nested in
// them are compared through them: an allOf member alone, say, lets null
// through under 2020-12 and not under 3.0, but only the whole is ever
// checked.
func pairs(t *testing.T, slow, fast *openapi3.T) []schemaPair {
	var out []schemaPair
	seen := map[*openapi3.Schema]bool{} // a component is referred to from many places
	add := func(where string, s, f *openapi3.SchemaRef) {
		if s == nil || s.Value == nil {
			return
		}
		if f == nil || f.Value == nil {
			t.Fatalf("%s: in the published document, not in the validation copy", where)
		}
		if !seen[s.Value] {
			seen[s.Value] = true
			out = append(out, schemaPair{where, s.Value, f.Value})
		}
	}
	content := func(where string, s, f openapi3.Content) {
		for mt, m := range s {
			add(where+"["+mt+"]", m.Schema, f[mt].Schema)
		}
	}
	response := func(where string, s, f *openapi3.Response) {
		content(where, s.Content, f.Content)
		for name, h := range s.Headers {
			add(where+".headers."+name, h.Value.Schema, f.Headers[name].Value.Schema)
		}
	}
	for name, s := range slow.Components.Schemas {
		add("components.schemas."+name, s, fast.Components.Schemas[name])
	}
	for name, r := range slow.Components.Responses {
		response("components.responses."+name, r.Value, fast.Components.Responses[name].Value)
	}
	for name, p := range slow.Components.Parameters {
		add("components.parameters."+name, p.Value.Schema, fast.Components.Parameters[name].Value.Schema)
	}
	for name, h := range slow.Components.Headers {
		add("components.headers."+name, h.Value.Schema, fast.Components.Headers[name].Value.Schema)
	}
	for path, item := range slow.Paths.Map() {
		fitem := fast.Paths.Value(path)
		for i, p := range item.Parameters {
			add(fmt.Sprintf("%s.parameters[%d]", path, i), p.Value.Schema, fitem.Parameters[i].Value.Schema)
		}
		for method, op := range item.Operations() {
			fop := fitem.GetOperation(method)
			where := method + " " + path
			for i, p := range op.Parameters {
				add(fmt.Sprintf("%s.parameters[%d]", where, i), p.Value.Schema, fop.Parameters[i].Value.Schema)
			}
			if op.RequestBody != nil {
				content(where+".requestBody", op.RequestBody.Value.Content, fop.RequestBody.Value.Content)
			}
			for code, r := range op.Responses.Map() {
				response(where+"."+code, r.Value, fop.Responses.Value(code).Value)
			}
		}
	}
	return out
}

// samples returns values to try against s: its own examples, and
// variations of each (every property dropped, replaced by each of the
// scalars, or joined by an unknown one), and the scalars themselves. They
// are decoded from JSON, as a request or answer body is.
func samples(s *openapi3.Schema) []any {
	scalars := []string{
		`null`, `true`, `0`, `-1`, `1`, `1.5`, `3600`, `3601`, `9007199254740993`, `""`, `"x"`, `"a b"`,
		`"acquired"`, `"held"`, `"free"`, `"released"`, `"renewed"`, `"ok"`, `"unavailable"`, `"sqlite"`, `"redis"`,
		`"unauthorized"`, `"invalid_name"`, `"lease_not_current"`, `"store_unavailable"`,
		`"2026-11-28T10:00:00.123Z"`, `"2026-13-45T99:00:00Z"`, `"not a date"`,
		`"os_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`, `"h_0123456789abcdef"`, `"no-store"`, `"nosniff"`, `"Bearer"`,
		`"` + strings.Repeat("n", 128) + `"`, `"` + strings.Repeat("n", 129) + `"`, `"` + strings.Repeat("m", 1025) + `"`,
		`{}`, `[]`, `[{}]`, `{"a":1}`,
	}
	var bases []any
	for _, e := range s.Examples {
		bases = append(bases, roundTrip(e))
	}
	if s.Example != nil {
		bases = append(bases, roundTrip(s.Example))
	}
	var out []any
	for _, sc := range scalars {
		var v any
		if err := json.Unmarshal([]byte(sc), &v); err != nil {
			panic(err)
		}
		out = append(out, v)
	}
	for _, b := range bases {
		out = append(out, b)
		obj, ok := b.(map[string]any)
		if !ok {
			continue
		}
		with := func(f func(m map[string]any)) {
			m := roundTrip(obj).(map[string]any)
			f(m)
			out = append(out, m)
		}
		with(func(m map[string]any) { m["unknown_field"] = 1 })
		for k := range obj {
			with(func(m map[string]any) { delete(m, k) })
			for _, v := range out[:len(scalars)] {
				with(func(m map[string]any) { m[k] = roundTrip(v) })
			}
		}
	}
	return out
}

// roundTrip returns v as it comes back from JSON.
func roundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// TestFastSchemasAgreeWith2020: every schema of the validation copy gives
// the verdict kin-openapi's JSON Schema 2020-12 validation of the published
// document gives, on the document's examples and variations of them that
// break each rule.
func TestFastSchemasAgreeWith2020(t *testing.T) {
	doc := apidocs.Document("dev")
	slow, err := LoadDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, err := validationDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	if fast.IsOpenAPI31OrLater() || !slow.IsOpenAPI31OrLater() {
		t.Fatalf("versions: copy %s, published %s; want 3.0 and 3.1", fast.OpenAPI, slow.OpenAPI)
	}
	ps := pairs(t, slow, fast)
	var accepted, refused, consts int
	forEachSchema(slow, func(s *openapi3.Schema) error {
		if s.Const != nil {
			consts++
		}
		return nil
	})
	for _, p := range ps {
		for _, v := range samples(p.slow) {
			errSlow := p.slow.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors())
			errFast := p.fast.VisitJSON(v, openapi3.MultiErrors())
			if (errSlow == nil) != (errFast == nil) {
				b, _ := json.Marshal(v)
				t.Errorf("%s, value %.200s: JSON Schema 2020-12 says %v, the validation copy says %v", p.where, b, errSlow, errFast)
				continue
			}
			if errSlow == nil {
				accepted++
			} else {
				refused++
			}
		}
	}
	t.Logf("%d schemas (%d with const), %d values accepted and %d refused by both", len(ps), consts, accepted, refused)
	// The comparison means something only if both verdicts came up often,
	// and const was among the rules tried.
	if accepted < 100 || refused < 1000 || consts == 0 {
		t.Errorf("too little compared: %d accepted, %d refused, %d schemas with const", accepted, refused, consts)
	}
}

// TestValidationDocumentRefuses2020Keywords: a document that starts using a
// keyword the copy cannot check fails to load instead of being checked
// more loosely.
func TestValidationDocumentRefuses2020Keywords(t *testing.T) {
	// Each schema, and what the error must show of it.
	for schema, shown := range map[string]string{
		`{"type":"object","if":{"required":["a"]},"then":{"required":["b"]}}`: `"if":`,
		`{"type":["string","null"]}`:                                          `["string","null"]`,
		`{"type":"array","prefixItems":[{"type":"string"}]}`:                  `"prefixItems":`,
	} {
		doc := `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":{"S":` + schema + `}}}`
		_, _, err := validationDocument([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), shown) {
			t.Errorf("%s: error %v, want one showing %s", schema, err, shown)
		}
	}
	ok := `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":{"S":{"const":"x"}}}}`
	d, _, err := validationDocument([]byte(ok))
	if err != nil {
		t.Fatalf("const: %v", err)
	}
	if s := d.Components.Schemas["S"].Value; s.Const != nil || len(s.Enum) != 1 || s.Enum[0] != "x" {
		t.Errorf("const x became const %v, enum %v; want enum [x]", s.Const, s.Enum)
	}
}
