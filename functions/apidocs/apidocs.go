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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/octostore/octostore/lockcore"
)

//go:embed openapi.json
var documentJSON []byte

// Cache lifetimes of what this package serves.
const (
	documentCacheControl = "public, max-age=300"
	pageCacheControl     = "public, max-age=300"
	assetCacheControl    = "public, max-age=3600"
)

// documents caches the rendered document per version and limits
// (docKey → []byte).
var documents sync.Map

// docKey identifies one rendering of the document.
type docKey struct {
	version string
	limits  lockcore.Limits
}

// Document returns the OpenAPI document as compact JSON with info.version
// set to version. It is computed once per version and cached; the result is
// a fresh copy the caller may keep or modify. It panics only if the embedded
// document is not valid JSON, which the package's tests rule out.
func Document(version string) []byte {
	return bytes.Clone(document(version, lockcore.DefaultLimits))
}

// DocumentFor is Document for a server with the given limits: the schema
// bounds of ttl_seconds (maximum, default) and metadata (maxLength) are
// the server's own, so a client generated from the document accepts what
// the server accepts.
func DocumentFor(version string, l lockcore.Limits) []byte {
	return bytes.Clone(document(version, l))
}

// document returns the shared, cached rendering for version and limits.
// Callers must not modify it.
func document(version string, l lockcore.Limits) []byte {
	if l == (lockcore.Limits{}) {
		l = lockcore.DefaultLimits
	}
	key := docKey{version, l}
	if b, ok := documents.Load(key); ok {
		return b.([]byte)
	}
	b, err := render(version)
	if err == nil {
		b, err = withLimits(b, l)
	}
	if err != nil {
		panic("apidocs: embedded openapi.json: " + err.Error())
	}
	actual, _ := documents.LoadOrStore(key, b)
	return actual.([]byte)
}

// limitKeywords are the parts of the compact document that state a default
// limit, with how many times each occurs: the schema keywords (ttl_seconds'
// maximum in 4 schemas and default in 2 request bodies, metadata's
// maxLength in 4) and what the examples and descriptions say, so that a
// server with other limits serves a document whose examples it accepts
// (Swagger UI's "Try it out" sends them) and whose text states its limits
// (the ttl_seconds descriptions name its range and default):
// the TTL examples become the server's default TTL (the acquire example's
// 30 at most its maximum), the metadata examples are cut to its
// maxLength, and the error examples name its limits.
func limitKeywords(l lockcore.Limits) []struct {
	from, to string
	n        int
} {
	d := lockcore.DefaultLimits
	num := func(v int64) string { return strconv.FormatInt(v, 10) }
	kw := func(k string, v int64) string { return `"` + k + `":` + num(v) }
	secs := func(t time.Duration) int64 { return int64(t / time.Second) }
	maxTTL, defTTL, dMaxTTL, dDefTTL := secs(l.MaxTTL), secs(l.DefaultTTL), secs(d.MaxTTL), secs(d.DefaultTTL)
	const meta = "host-7"
	shortMeta := meta[:min(len(meta), l.MaxMetadataBytes)]
	return []struct {
		from, to string
		n        int
	}{
		{kw("maximum", dMaxTTL), kw("maximum", maxTTL), 4},
		{kw("default", dDefTTL), kw("default", defTTL), 2},
		{kw("maxLength", int64(d.MaxMetadataBytes)), kw("maxLength", int64(l.MaxMetadataBytes)), 4},
		{`"examples":[` + num(dDefTTL) + `]`, `"examples":[` + num(defTTL) + `]`, 4},
		{kw("ttl_seconds", dDefTTL), kw("ttl_seconds", defTTL), 3},
		{kw("ttl_seconds", 30), kw("ttl_seconds", min(30, maxTTL)), 1},
		{"Defaults (" + num(dDefTTL) + " s,", "Defaults (" + num(defTTL) + " s,", 1},
		{"default " + num(dDefTTL), "default " + num(defTTL), 5},
		{"from 1 to " + num(dMaxTTL) + " (got 0)", "from 1 to " + num(maxTTL) + " (got 0)", 1},
		// The ttl_seconds descriptions: four of the five "default"s above
		// are inside this phrase, which the replacer matches at its start.
		{"from 1 to " + num(dMaxTTL) + " (default " + num(dDefTTL) + ")", "from 1 to " + num(maxTTL) + " (default " + num(defTTL) + ")", 4},
		{"at most " + num(int64(d.MaxMetadataBytes)) + " bytes", "at most " + num(int64(l.MaxMetadataBytes)) + " bytes", 2},
		{`"` + meta + `"`, `"` + shortMeta + `"`, 8},
		{"holds " + num(int64(d.MaxHeldLocks)) + " unexpired locks", "holds " + num(int64(l.MaxHeldLocks)) + " unexpired locks", 1},
	}
}

// withLimits writes l's bounds into the compact document doc. Every part
// is counted in doc first and all are replaced in one pass, so that one
// replacement cannot make another's text (a default TTL of 30 would
// otherwise add to the occurrences of the acquire example's 30).
func withLimits(doc []byte, l lockcore.Limits) ([]byte, error) {
	var pairs []string
	for _, k := range limitKeywords(l) {
		if c := bytes.Count(doc, []byte(k.from)); c != k.n {
			return nil, fmt.Errorf("%s occurs %d times, want %d", k.from, c, k.n)
		}
		pairs = append(pairs, k.from, k.to)
	}
	return []byte(strings.NewReplacer(pairs...).Replace(string(doc))), nil
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
	return RoutesFor(version, lockcore.DefaultLimits)
}

// RoutesFor is Routes for a server with the given limits (see DocumentFor).
func RoutesFor(version string, l lockcore.Limits) []Route {
	doc := openAPIHandler(document(version, l))
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

// openAPIHandler serves body, a rendering of the document, as
// application/json that clients may cache for 5 minutes.
func openAPIHandler(body []byte) http.Handler {
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
