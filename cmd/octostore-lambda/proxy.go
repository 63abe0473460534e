package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/octostore/octostore/lockcore"
)

// proxy turns Lambda events into requests for the API handler and its
// answers back into Lambda responses. It serves:
//
//   - API Gateway HTTP API events of payload format 2.0 and Lambda Function
//     URL events (the same shape; both say "version": "2.0");
//   - API Gateway REST API events and HTTP API events of payload format 1.0
//     (anything else).
//
// The Lambda request context becomes the request's context, its deadline
// brought deadlineMargin forward, so that store and GitHub calls stop in
// time for the answer to reach API Gateway before the invocation ends.
//
// The handler gets what a net/http server would give it (see asNetHTTP).
//
// A proxy is safe for concurrent use.
type proxy struct {
	h   http.Handler
	v1  *httpadapter.HandlerAdapter
	v2  *httpadapter.HandlerAdapterV2
	log *slog.Logger
}

func newProxy(h http.Handler, logger *slog.Logger) *proxy {
	a := asNetHTTP(h)
	return &proxy{h: h, v1: httpadapter.New(a), v2: httpadapter.NewV2(a), log: logger}
}

// deadlineMargin is how long before the invocation deadline the request's
// context ends: time to write the answer (a 503 or a 502) and hand it back.
const deadlineMargin = 500 * time.Millisecond

// asNetHTTP wraps h so that, behind the proxy library, it is served as
// net/http's server serves it:
//   - request header values are as sent: for a payload 2.0 event the
//     library splits every value at its commas (so "X-Request-Id: a,b"
//     would reach h as "a", and "Accept-Encoding: deflate, gzip" as two
//     values of which Get sees only the first); they are joined again
//     (Cookie excepted, whose values the library builds from the event's
//     cookies). A REST API event's multiValueHeaders are the header lines
//     as sent, which the library keeps apart, as net/http does: they are
//     left so (a repeated X-Request-Id is echoed by its first value, a
//     repeated Authorization is refused as such);
//   - a handler that writes nothing answers 200 (the library would report
//     "status code not set" and the proxy a 400; static-file handlers do
//     that for HEAD);
//   - the method is the event's, as sent: the library upper-cases it, so a
//     "get" would match the route of GET, where net/http's ServeMux answers
//     405 (methods are case-sensitive);
//   - the answer to HEAD has no body.
func asNetHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := r.Context().Value(eventKey{}).(eventInfo)
		if ev.method != "" {
			r.Method = ev.method
		}
		if ev.splitHeaders {
			for k, vs := range r.Header {
				if len(vs) > 1 && k != "Cookie" {
					r.Header[k] = []string{strings.Join(vs, ",")}
				}
			}
		}
		nw := &netWriter{ResponseWriter: w, head: r.Method == http.MethodHead}
		h.ServeHTTP(nw, r)
		if !nw.wrote {
			nw.WriteHeader(http.StatusOK)
		}
	})
}

// eventKey is the request context key under which serveV1 and serveV2
// keep an eventInfo for asNetHTTP.
type eventKey struct{}

// eventInfo is what asNetHTTP needs to know of the event behind a request.
type eventInfo struct {
	// method is the event's method, as sent.
	method string
	// splitHeaders is set when the library split the event's header
	// values at their commas (payload 2.0).
	splitHeaders bool
}

// netWriter is asNetHTTP's http.ResponseWriter: it notes whether the
// handler wrote anything and, for HEAD, drops the body.
type netWriter struct {
	http.ResponseWriter
	head, wrote bool
}

func (w *netWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *netWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.head {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the library's writer.
func (w *netWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handle is the Lambda handler. The event is decoded as payload 2.0 first,
// so HTTP API and Function URL events are decoded once; any other event
// (no "version": "2.0") is decoded again as a REST API event. It returns an
// error (a function error, which API Gateway shows as a 5xx) only for a
// payload that is not a JSON object, which API Gateway never sends.
func (p *proxy) handle(ctx context.Context, raw json.RawMessage) (any, error) {
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-deadlineMargin))
		defer cancel()
	}
	var v2 events.APIGatewayV2HTTPRequest
	err := json.Unmarshal(raw, &v2)
	if v2.Version == "2.0" {
		if err != nil {
			p.log.Warn("unreadable HTTP API event", slog.String("error", err.Error()))
			return badRequestV2(v2.Headers), nil
		}
		return p.serveV2(ctx, v2), nil
	}
	var v1 events.APIGatewayProxyRequest
	if err := json.Unmarshal(raw, &v1); err != nil {
		var syntax *json.SyntaxError
		if trimmed := bytes.TrimSpace(raw); errors.As(err, &syntax) || len(trimmed) == 0 || trimmed[0] != '{' {
			return nil, errors.New("octostore-lambda: the event is not a JSON object")
		}
		p.log.Warn("unreadable REST API event", slog.String("error", err.Error()))
		return badRequestV1(v1.Headers), nil
	}
	if v2.Version == "1.0" {
		// An HTTP API event of payload 1.0: on a named stage its path
		// starts with "/<stage>", as in payload 2.0. (A REST API event has
		// no version, and its path never carries the stage.)
		// Its path is also percent-decoded already, as in payload 2.0.
		v1.Path = escapeDecodedPath(stripStage(v1.Path, v1.RequestContext.Stage))
		return p.serveV1(ctx, v1), nil
	}
	v1.Path = cleanRawPath(v1.Path)
	return p.serveV1(ctx, v1), nil
}

// serveV2 answers a payload 2.0 event. With a named HTTP API stage the raw
// path starts with "/<stage>"; that prefix is removed so the routes match.
// ($default, the template's stage, and Function URLs have no prefix.)
func (p *proxy) serveV2(ctx context.Context, ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	if ev.RawPath == "" {
		ev.RawPath = ev.RequestContext.HTTP.Path
	}
	path := stripStage(ev.RawPath, ev.RequestContext.Stage)
	if isFunctionURL(ev) {
		ev.RawPath = cleanRawPath(path)
	} else {
		// API Gateway's HTTP API hands the path over percent-decoded
		// (rawPath is not raw): escape it again, '%' included, so that
		// "/locks/%2541" names the lock "%41" (400 invalid_name, as on
		// serve) instead of being decoded a second time into "A".
		ev.RawPath = escapeDecodedPath(path)
	}
	ctx = context.WithValue(ctx, eventKey{}, eventInfo{method: ev.RequestContext.HTTP.Method, splitHeaders: true})
	resp, err := p.v2.ProxyWithContext(ctx, ev)
	if err != nil {
		p.log.Warn("unreadable HTTP API event", slog.String("error", err.Error()))
		return badRequestV2(ev.Headers)
	}
	return resp
}

// serveV1 answers a REST API (or payload 1.0) event, its path without the
// stage and already a valid escaped path.
func (p *proxy) serveV1(ctx context.Context, ev events.APIGatewayProxyRequest) events.APIGatewayProxyResponse {
	ctx = context.WithValue(ctx, eventKey{}, eventInfo{method: ev.HTTPMethod})
	resp, err := p.v1.ProxyWithContext(ctx, ev)
	if err != nil {
		p.log.Warn("unreadable REST API event", slog.String("error", err.Error()))
		return badRequestV1(ev.Headers)
	}
	return resp
}

// stripStage removes a leading "/stage" segment from path when stage is a
// named stage ("" and "$default" have none).
func stripStage(path, stage string) string {
	if stage == "" || stage == "$default" {
		return path
	}
	prefix := "/" + stage
	switch {
	case path == prefix:
		return "/"
	case strings.HasPrefix(path, prefix+"/"):
		return path[len(prefix):]
	}
	return path
}

// cleanRawPath makes path a valid escaped URL path without changing what it
// means: a '%' not starting a %XX escape becomes %25, and bytes that may not
// appear raw in a path ('?', '#', spaces, controls, non-ASCII) are
// percent-encoded. So a path such as /locks/%zz reaches the handler (which
// answers 400 invalid_name) instead of failing the request conversion.
func cleanRawPath(path string) string { return escapePath(path, false) }

// isFunctionURL reports whether ev comes from a Lambda Function URL, whose
// rawPath keeps the client's percent-encoding (an HTTP API's is decoded).
func isFunctionURL(ev events.APIGatewayV2HTTPRequest) bool {
	return strings.Contains(ev.RequestContext.DomainName, ".lambda-url.")
}

// escapeDecodedPath turns a percent-decoded path (an HTTP API's rawPath)
// back into an escaped one: every byte that may not appear raw in a path,
// '%' included, is percent-encoded. (An escaped '/' cannot be told from a
// plain one once decoded: "/locks/a%2Fb" stays a path of more segments.)
func escapeDecodedPath(path string) string { return escapePath(path, true) }

// escapePath percent-encodes every byte of path that pathByteOK refuses,
// and every '%' too when percent is true (a decoded path, in which a '%'
// is a literal one). A path with nothing to encode is returned as it is.
func escapePath(path string, percent bool) string {
	const hexDigits = "0123456789ABCDEF"
	keep := func(i int) bool { return pathByteOK(path, i) && (!percent || path[i] != '%') }
	i := 0
	for i < len(path) && keep(i) {
		i++
	}
	if i == len(path) {
		return path
	}
	var b strings.Builder
	b.WriteString(path[:i])
	for ; i < len(path); i++ {
		c := path[i]
		if keep(i) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// pathByteOK reports whether path[i] may stay as it is in an escaped path.
func pathByteOK(path string, i int) bool {
	c := path[i]
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		return true
	case c == '%':
		return i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2])
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// badRequestBody is the answer to an event the adapter cannot turn into a
// request (say, a body flagged base64 that is not): what a net/http server
// answers to an unreadable request, in the API's error shape, with the
// contract's code for a request body that cannot be read (invalid_json).
// As the handler does, it echoes a well-formed X-Request-Id unless it holds
// a token, and otherwise makes a fresh one.
func badRequestBody(headers map[string]string) (string, map[string]string) {
	id := ""
	for k, v := range headers {
		if strings.EqualFold(k, "X-Request-Id") && validRequestID(v) && lockcore.HideTokens(v) == v {
			id = v
		}
	}
	if id == "" {
		var b [16]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	body, _ := json.Marshal(map[string]string{
		"error":      "the request could not be read",
		"code":       "invalid_json",
		"request_id": id,
	})
	return string(body) + "\n", map[string]string{
		"Content-Type":           "application/json; charset=utf-8",
		"X-Request-Id":           id,
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	}
}

func badRequestV2(headers map[string]string) events.APIGatewayV2HTTPResponse {
	body, h := badRequestBody(headers)
	return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusBadRequest, Headers: h, Body: body}
}

func badRequestV1(headers map[string]string) events.APIGatewayProxyResponse {
	body, h := badRequestBody(headers)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusBadRequest, Headers: h, Body: body}
}

// validRequestID reports whether id matches ^[A-Za-z0-9._:-]{1,128}$, the
// request ids the API echoes.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}
