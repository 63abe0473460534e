// Package contracttest holds an HTTP handler to the OpenAPI document of
// package apidocs during tests. A Validator wraps the handler under test;
// every request and response passing through is checked against the
// document with kin-openapi's openapi3filter, and the operations and
// statuses seen are recorded so a test can report what it left uncovered.
//
// The rules, for each exchange:
//
//   - The request is matched to an operation by method and path (HEAD is
//     matched as GET, as HTTP defines it). The escaped path is used, so
//     "/locks/a%2Fb" is an invalid lock name, not an unknown route; path
//     parameters are then validated decoded ("%2E" is the name ".").
//     Segments count: "/locks/" is not "/locks", and a path with an empty,
//     "." or ".." segment is no route.
//   - A path the document does not have must be answered 404 not_found as
//     components.responses.NotFound says. A documented path asked with an
//     undocumented method must be answered 405 method_not_allowed (as
//     components.responses.MethodNotAllowed says) with an Allow header naming
//     exactly the path's documented methods, plus HEAD where GET is.
//   - The request is validated (security, parameters, body). The contract
//     parses a body as JSON whatever its Content-Type says, so the request is
//     validated as application/json; an all-whitespace body is no body. The
//     bearer scheme is matched case-insensitively, spaces forgiven. The handler still gets the request as
//     it came: a request the document calls invalid (a bad lock name, a
//     missing token, a body breaking the schema) is not refused here but
//     must be answered with a status of 400 or more; a valid one may get any
//     status the operation documents.
//   - The response's status must be documented for the operation, its body
//     must match the schema for its Content-Type (the document's schemas say
//     additionalProperties: false, so an undocumented field fails), its
//     documented headers must be present and valid, and every header it has
//     must be documented (except Content-Type, Content-Length, Date,
//     Transfer-Encoding and Connection), so an undocumented header fails.
//   - Two exchanges are recorded but not checked, as no client can see
//     them: a request whose body never fully arrived (cut short, or
//     trickled past the server's read timeout), and one whose client went
//     away (its context was cancelled) before the answer.
//
// Values are checked with kin-openapi's own (OpenAPI 3.0) schema validator,
// against a copy of the document in which each const is the equivalent
// one-value enum: for a 3.1 document kin-openapi would compile a JSON
// Schema 2020-12 validator on every check (schema30.go says why that
// matters; TestFastSchemasAgreeWith2020 holds the two to the same
// verdicts).
//
// A Validator is safe for concurrent use: failures are reported with
// t.Errorf from whichever goroutine served the request, to the t of the
// request's context (WithT) or else the Validator's.
package contracttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/octostore/octostore/functions/apidocs"
)

// transportHeaders are response headers that belong to HTTP itself rather
// than to the API, so the document need not list them.
var transportHeaders = []string{"Content-Type", "Content-Length", "Date", "Transfer-Encoding", "Connection"}

// probeMethods are the methods tried on a documented path to find the ones
// it allows.
var probeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// The docs page and its assets are not JSON: kin-openapi has no decoders
// for their media types, so they are registered (process-wide) as opaque
// text, validated against the document's {type: string} schemas.
func init() {
	for _, ct := range []string{"text/html", "text/css", "application/javascript", "image/png"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

// Validator checks exchanges against the document and records coverage.
type Validator struct {
	t   testing.TB
	doc *openapi3.T // as published: what Document returns
	// spec is the copy that requests and answers are routed and checked
	// against (validationDocument), and router routes to it.
	spec   *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]int // "METHOD /path STATUS" → count
}

// Load parses and validates doc (an OpenAPI 3.1 document such as
// apidocs.Document) and returns a Validator reporting to t. The document's
// servers are ignored: requests are matched by path alone, whatever host
// and prefix served them. It fails t now if doc is not valid.
func Load(t testing.TB, doc []byte) *Validator {
	t.Helper()
	v, err := load(doc)
	if err != nil {
		t.Fatalf("contracttest: %v", err)
	}
	v.t, v.seen = t, map[string]int{}
	return v
}

// load parses doc twice, as published and as the validation copy, and
// routes to the copy. The document's servers are dropped from both.
func load(doc []byte) (*Validator, error) {
	d, err := LoadDocument(doc)
	if err != nil {
		return nil, err
	}
	d.Servers = nil
	spec, r, err := validationDocument(doc)
	if err != nil {
		return nil, err
	}
	return &Validator{doc: d, spec: spec, router: r}, nil
}

// LoadDocument parses doc with kin-openapi and validates it as OpenAPI
// (3.1 features such as const and type arrays are checked with JSON Schema
// 2020-12, which kin-openapi turns on for a 3.1 document).
func LoadDocument(doc []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("loading the document: %w", err)
	}
	if err := d.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the document is not valid OpenAPI: %w", err)
	}
	return d, nil
}

// devDocument is apidocs.Document("dev") parsed, validated and routed once
// per test binary: parsing takes tens of milliseconds, and suites wrap a
// fresh handler per subtest. The parsed document and router are only read
// afterwards, so Validators share them.
var devDocument = sync.OnceValues(func() (*Validator, error) {
	return load(apidocs.Document("dev"))
})

// Wrap returns h wrapped in a Validator of apidocs.Document("dev") that
// reports to t; the Validator is logged (covered and uncovered operations)
// when t ends. The document is parsed once per test binary.
func Wrap(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	v := New(t)
	t.Cleanup(func() { v.LogCoverage() })
	return v.Wrap(h)
}

// New returns a Validator of apidocs.Document("dev") reporting to t; the
// document is parsed once per test binary.
func New(t testing.TB) *Validator {
	t.Helper()
	shared, err := devDocument()
	if err != nil {
		t.Fatalf("contracttest: %v", err)
	}
	return &Validator{t: t, doc: shared.doc, spec: shared.spec, router: shared.router, seen: map[string]int{}}
}

// Document returns the parsed document the Validator checks against. It
// must not be modified.
func (v *Validator) Document() *openapi3.T { return v.doc }

// Wrap returns a handler that serves each request with h and checks the
// exchange. The response is buffered, checked, then written to the client
// unchanged (so h must not need streaming).
func (v *Validator) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := v.t
		if rt, ok := r.Context().Value(reporterKey{}).(testing.TB); ok {
			t = rt
		}
		// The handler reads the body as it arrives (its timing and errors
		// are part of what is tested); what it leaves unread is read after
		// it answers, so the whole request can be validated.
		var got bytes.Buffer
		orig := r.Body
		tee := io.TeeReader(orig, &got)
		r.Body = readCloser{tee, orig}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		_, readErr := io.Copy(io.Discard, tee)
		body := got.Bytes()
		res := rec.Result()
		resBody := rec.Body.Bytes()

		switch {
		case readErr != nil:
			// The client never finished its request (a body cut short or
			// trickled past the server's timeout): there is no request to
			// hold to the document.
			v.record("(incomplete request)", res.StatusCode)
		case r.Context().Err() != nil:
			// The client went away (or half-closed) before the answer:
			// not held to the document.
			v.record("(client gone)", res.StatusCode)
		default:
			if err := v.Check(r.Context(), r, body, res.StatusCode, res.Header, resBody); err != nil {
				t.Errorf("contracttest: %s %s → %d: %v", r.Method, r.URL.RequestURI(), res.StatusCode, err)
			}
		}

		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(resBody)
	})
}

// Transport returns an http.RoundTripper for tests whose handler runs in
// another process (the real binary): it sends each request with base
// (http.DefaultTransport when nil), reads the whole answer, and checks the
// exchange as Wrap does, then hands the answer on unchanged. Requests are
// matched by path alone, so the client must send only to the service. A
// request that gets no answer (a transport error, the client's own
// timeout) is not checked. Failures go to the request context's t
// (WithT), or else the Validator's.
func (v *Validator) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{v, base}
}

// Client returns an *http.Client whose Transport is a Validator of
// apidocs.Document("dev") (parsed once per test binary) over a transport
// of its own, reporting to t; redirects are not followed (an answer
// from elsewhere is not the service's). Its idle connections are closed
// when t ends.
func Client(t testing.TB) *http.Client {
	t.Helper()
	v := New(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     v.Transport(tr),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type roundTripper struct {
	v    *Validator
	base http.RoundTripper
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	out := r
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		out = r.Clone(r.Context())
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	res, err := rt.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	resBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	t := rt.v.t
	if rep, ok := r.Context().Value(reporterKey{}).(testing.TB); ok {
		t = rep
	}
	if err := rt.v.Check(r.Context(), out, body, res.StatusCode, res.Header, resBody); err != nil {
		t.Errorf("contracttest: %s %s → %d: %v", r.Method, r.URL.RequestURI(), res.StatusCode, err)
	}
	return res, nil
}

// reporterKey is the context key of WithT.
type reporterKey struct{}

// WithT returns ctx carrying t: a Validator reports a failure of a request
// with this context to t instead of the t it was made with. Fuzz targets
// and subtests sharing one wrapped handler use it to fail the right test.
func WithT(ctx context.Context, t testing.TB) context.Context {
	return context.WithValue(ctx, reporterKey{}, t)
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// Check checks one exchange: request r (whose body is reqBody; r.Body is
// not read) answered with status, header and resBody. It records the
// operation and status, and returns what breaks the document, or nil.
func (v *Validator) Check(ctx context.Context, r *http.Request, reqBody []byte, status int, header http.Header, resBody []byte) error {
	vr := v.validationRequest(ctx, r, reqBody)
	route, params, err := v.findRoute(vr)
	if err != nil {
		return v.checkUnrouted(vr, status, header, resBody)
	}
	v.record(route.Method+" "+route.Path, status)
	// Routing used the escaped path so that an escaped "/" stays inside one
	// segment; the parameter's value is what the segment decodes to.
	for k, p := range params {
		if u, err := url.PathUnescape(p); err == nil {
			params[k] = u
		}
	}

	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		SkipSettingDefaults:   true,
		AuthenticationFunc:    bearerShape,
	}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route, Options: opts}
	// A request answered with an error may be invalid, so it is validated
	// only when it was accepted (which also spares kin-openapi formatting
	// huge errors for the hostile bodies the suites send).
	if status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("the document calls the request invalid (%v) but it was answered %d", err, status)
		}
	}

	head := r.Method == http.MethodHead
	opts.ExcludeResponseBody = head
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(resBody)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("status %d is not documented for %s %s", status, route.Method, route.Path)
	}
	return checkHeaders(resp.Value, header, resBody, head)
}

// validationRequest is the copy of r that is matched and validated: HEAD as
// GET, the escaped path, and a JSON Content-Type on a body.
func (v *Validator) validationRequest(ctx context.Context, r *http.Request, body []byte) *http.Request {
	vr := r.Clone(ctx)
	if vr.Method == http.MethodHead {
		vr.Method = http.MethodGet
	}
	vr.URL.Path = r.URL.EscapedPath()
	vr.URL.RawPath = ""
	if len(bytes.TrimSpace(body)) > 0 {
		vr.Header.Set("Content-Type", "application/json")
	} else {
		// An empty (or all-whitespace) body is no body: the contract reads
		// it as {}, whatever Content-Type came with it.
		body = nil
		vr.Header.Del("Content-Type")
	}
	vr.Body = io.NopCloser(bytes.NewReader(body))
	vr.ContentLength = int64(len(body))
	return vr
}

// findRoute finds vr's operation. The router forgives a trailing slash
// ("/locks/" for "/locks"); the document does not, so a path with more or
// fewer segments than the template matched is no route. Nor is a path with
// an empty segment or a dot segment ("/locks/./acquire"): URL normalisation
// (RFC 3986 §5.2.4) removes dot segments, so no name can be sent that way
// ("%2E" is the name ".").
func (v *Validator) findRoute(vr *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := v.router.FindRoute(vr)
	if err != nil {
		return nil, nil, err
	}
	if strings.Count(route.Path, "/") != strings.Count(vr.URL.Path, "/") {
		return nil, nil, fmt.Errorf("%s matches %s only without its trailing slash", vr.URL.Path, route.Path)
	}
	for seg := range strings.SplitSeq(vr.URL.Path[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, nil, fmt.Errorf("%s has an empty or dot segment", vr.URL.Path)
		}
	}
	return route, params, nil
}

// bearerShape accepts a request with exactly one "Authorization: Bearer X"
// header, X non-empty and without spaces: the shape the document asks for. Whether the token
// is known is the handler's business (401 is documented).
func bearerShape(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return in.NewError(fmt.Errorf("contracttest knows only http bearer security, not %q", in.SecuritySchemeName))
	}
	vals := in.RequestValidationInput.Request.Header.Values("Authorization")
	if len(vals) != 1 {
		return in.NewError(fmt.Errorf("want one Authorization header, got %d", len(vals)))
	}
	// The scheme is case-insensitive (RFC 9110 §11.1) and the contract
	// forgives spaces around and between scheme and token.
	f := strings.Fields(vals[0])
	if len(f) != 2 || !strings.EqualFold(f[0], "Bearer") {
		return in.NewError(fmt.Errorf("want Authorization: Bearer <token>"))
	}
	return nil
}

// checkUnrouted checks the answer to a request the document has no
// operation for.
func (v *Validator) checkUnrouted(vr *http.Request, status int, header http.Header, resBody []byte) error {
	allowed := v.methodsOf(vr)
	if len(allowed) == 0 {
		v.record("(unknown route)", status)
		return v.checkComponent(vr, "NotFound", http.StatusNotFound, status, header, resBody)
	}
	// The document lists 405 on each operation of the path.
	tmpl := pathTemplate(v, vr)
	for _, m := range allowed {
		if m != http.MethodHead {
			v.record(m+" "+tmpl, status)
		}
	}
	if err := v.checkComponent(vr, "MethodNotAllowed", http.StatusMethodNotAllowed, status, header, resBody); err != nil {
		return err
	}
	got := splitList(header.Get("Allow"))
	if !slices.Equal(got, allowed) {
		return fmt.Errorf("the Allow header is %q, the document says %q", header.Get("Allow"), strings.Join(allowed, ", "))
	}
	return nil
}

// methodsOf returns the documented methods of vr's path (with HEAD where
// GET is), sorted; none if the path is not documented.
func (v *Validator) methodsOf(vr *http.Request) []string {
	var ms []string
	for _, m := range probeMethods {
		probe := vr.Clone(vr.Context())
		probe.Method = m
		if m == http.MethodHead {
			probe.Method = http.MethodGet
		}
		if _, _, err := v.findRoute(probe); err == nil {
			ms = append(ms, m)
		}
	}
	sort.Strings(ms)
	return ms
}

// pathTemplate returns the documented path template vr's path matches,
// found through any of its methods.
func pathTemplate(v *Validator, vr *http.Request) string {
	for _, m := range probeMethods {
		probe := vr.Clone(vr.Context())
		probe.Method = m
		if route, _, err := v.findRoute(probe); err == nil {
			return route.Path
		}
	}
	return vr.URL.Path
}

// checkComponent checks an answer against components.responses[name],
// which documents status want.
func (v *Validator) checkComponent(vr *http.Request, name string, want, status int, header http.Header, resBody []byte) error {
	if status != want {
		return fmt.Errorf("the document has no operation for %s %s, so the answer must be %d (%s), not %d", vr.Method, vr.URL.Path, want, name, status)
	}
	ref := v.spec.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("the document has no components.responses.%s", name)
	}
	responses := openapi3.NewResponses(openapi3.WithStatus(want, ref))
	route := &routers.Route{Spec: v.spec, Path: vr.URL.Path, Method: vr.Method,
		Operation: &openapi3.Operation{Responses: responses}, PathItem: &openapi3.PathItem{}}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	head := vr.Method == http.MethodHead
	opts.ExcludeResponseBody = head
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vr, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(resBody)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(vr.Context(), out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return checkHeaders(ref.Value, header, resBody, head)
}

// checkHeaders fails on a header the response does not document, and on a
// body where the response documents none.
func checkHeaders(resp *openapi3.Response, header http.Header, body []byte, head bool) error {
	var undocumented []string
	for name := range header {
		if slices.ContainsFunc(transportHeaders, func(t string) bool { return strings.EqualFold(t, name) }) {
			continue
		}
		found := false
		for doc := range resp.Headers {
			if strings.EqualFold(doc, name) {
				found = true
				break
			}
		}
		if !found {
			undocumented = append(undocumented, name)
		}
	}
	if len(undocumented) > 0 {
		sort.Strings(undocumented)
		return fmt.Errorf("undocumented response headers %q", undocumented)
	}
	if len(resp.Content) == 0 && len(body) > 0 && !head {
		return fmt.Errorf("a %d-byte body where the document has none", len(body))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func (v *Validator) record(op string, status int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen[fmt.Sprintf("%s %d", op, status)]++
}

// Covered returns the exchanges seen so far as "METHOD /path STATUS"
// (the documented path template; "(unknown route) STATUS" for paths the
// document lacks), sorted.
func (v *Validator) Covered() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Sorted(maps.Keys(v.seen))
}

// Uncovered returns the documented "METHOD /path STATUS" triples no
// exchange has shown yet, sorted. HEAD exchanges count for GET; a 405 on
// a path counts for every operation of the path.
func (v *Validator) Uncovered() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, path := range v.doc.Paths.InMatchingOrder() {
		item := v.doc.Paths.Value(path)
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				key := method + " " + path + " " + status
				if v.seen[key] == 0 {
					out = append(out, key)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// LogCoverage logs Covered and Uncovered to the Validator's t.
func (v *Validator) LogCoverage() {
	v.t.Helper()
	v.t.Logf("contract coverage: seen %d kinds of exchange:\n  %s", len(v.Covered()), strings.Join(v.Covered(), "\n  "))
	if u := v.Uncovered(); len(u) > 0 {
		v.t.Logf("contract coverage: %d documented answers not seen:\n  %s", len(u), strings.Join(u, "\n  "))
	}
}
