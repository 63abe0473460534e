// Package apidocs is OctoStore's API contract as an OpenAPI 3.1 document,
// and the two routes that publish it: GET /openapi.json (the document, with
// info.version set to the running build) and GET /docs (Swagger UI, with its
// assets embedded in the binary so the page works offline).
//
// The document (openapi.json, embedded) is written by hand from the contract
// in the project's API.md; the package apidocs/contracttest holds the code to
// it by validating every request and response of a test session against it.
//
// Everything the docs page loads is relative to where it was served, so the
// same binary works at the origin's root and behind a path prefix such as an
// API Gateway stage (https://host/prod/docs):
//   - the page at …/docs loads its assets from "docs/…" (resolving to
//     …/docs/…) and the document from "../openapi.json" (resolving to
//     …/openapi.json);
//   - the document's only server is ".", which Swagger UI resolves against
//     the document's own URL, so "Try it out" calls …/locks/… on the same
//     origin and prefix.
//
// All values and handlers of this package are immutable and safe for
// concurrent use.
package apidocs

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

//go:embed openapi.json
var documentJSON []byte

// Cache lifetimes of what this package serves.
const (
	documentCacheControl = "public, max-age=300"
	pageCacheControl     = "public, max-age=300"
	assetCacheControl    = "public, max-age=3600"
)

// documents caches the rendered document per version (version → []byte).
var documents sync.Map

// Document returns the OpenAPI document as compact JSON with info.version
// set to version. It is computed once per version and cached; the result is
// a fresh copy the caller may keep or modify. It panics only if the embedded
// document is not valid JSON, which the package's tests rule out.
func Document(version string) []byte {
	return bytes.Clone(document(version))
}

// document returns the shared, cached rendering for version. Callers must
// not modify it.
func document(version string) []byte {
	if b, ok := documents.Load(version); ok {
		return b.([]byte)
	}
	b, err := render(version)
	if err != nil {
		panic("apidocs: embedded openapi.json: " + err.Error())
	}
	actual, _ := documents.LoadOrStore(version, b)
	return actual.([]byte)
}

// render rewrites info.version of the embedded document, keeping the order
// of its top-level members (Swagger UI lists paths in document order).
func render(version string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(documentJSON))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object (%v)", err)
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for first := true; dec.More(); first = false {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if key == "info" {
			var info map[string]any
			if err := json.Unmarshal(raw, &info); err != nil {
				return nil, err
			}
			info["version"] = version
			if raw, err = json.Marshal(info); err != nil {
				return nil, err
			}
		}
		if !first {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		out.Write(k)
		out.WriteByte(':')
		out.Write(raw)
	}
	out.WriteByte('}')
	var compact bytes.Buffer
	if err := json.Compact(&compact, out.Bytes()); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// Route is one route of this package: a net/http ServeMux pattern such as
// "GET /docs" and its handler.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Routes returns the routes of the document and the docs page, for the
// caller to register on its own mux (so that its 404 and 405 answers and its
// middleware apply to them too): "GET /openapi.json", "GET /docs" and one
// "GET /docs/<file>" per Swagger UI asset. version is written into the
// document's info.version.
func Routes(version string) []Route {
	doc := OpenAPIHandler(version)
	p := docsPage()
	routes := []Route{
		{Pattern: "GET /openapi.json", Handler: doc},
		{Pattern: "GET /docs", Handler: p},
	}
	for _, a := range assetNames {
		routes = append(routes, Route{Pattern: "GET /docs/" + a, Handler: p.assets})
	}
	return routes
}

// Handler returns a mux serving Routes(version) and nothing else, with
// net/http's own plain-text 404 and 405 answers. It suits a server that has
// no mux of its own and tests; the API server registers Routes instead.
func Handler(version string) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes(version) {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	return mux
}

// OpenAPIHandler serves the document with info.version set to version, as
// application/json that clients may cache for 5 minutes.
func OpenAPIHandler(version string) http.Handler {
	body := document(version)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Cache-Control", documentCacheControl)
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}
