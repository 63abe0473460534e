package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/octostore/octostore/lockcore"
)

// echoHandler answers 200 with "METHOD PATH?QUERY body".
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(body))
})

func TestProxyHandle(t *testing.T) {
	p := newProxy(echoHandler, slog.New(slog.DiscardHandler))
	tests := []struct {
		name       string
		event      string
		wantErr    bool
		wantStatus int
		wantBody   string // substring
		wantV1     bool   // the answer is a REST API (payload 1.0) response
	}{
		{name: "http api", event: `{"version":"2.0","rawPath":"/locks/a","rawQueryString":"x=1","requestContext":{"stage":"$default","http":{"method":"GET"}}}`,
			wantStatus: 200, wantBody: "GET /locks/a?x=1 "},
		{name: "http api named stage", event: `{"version":"2.0","rawPath":"/prod/locks/a","requestContext":{"stage":"prod","http":{"method":"GET"}}}`,
			wantStatus: 200, wantBody: "GET /locks/a "},
		{name: "http api no rawPath", event: `{"version":"2.0","requestContext":{"stage":"$default","http":{"method":"POST","path":"/health"}},"body":"hi"}`,
			wantStatus: 200, wantBody: "POST /health hi"},
		{name: "http api no rawPath named stage", event: `{"version":"2.0","requestContext":{"stage":"prod","http":{"method":"GET","path":"/prod/locks/a"}}}`,
			wantStatus: 200, wantBody: "GET /locks/a "},
		{name: "rest api bad escape", event: `{"resource":"/{proxy+}","path":"/locks/%zz","httpMethod":"GET","requestContext":{"stage":"prod"}}`,
			wantStatus: 200, wantBody: "GET /locks/%25zz ", wantV1: true},
		{name: "http api base64 body", event: `{"version":"2.0","rawPath":"/x","isBase64Encoded":true,"body":"aGVsbG8=","requestContext":{"http":{"method":"POST"}}}`,
			wantStatus: 200, wantBody: "POST /x hello"},
		{name: "rest api", event: `{"resource":"/{proxy+}","path":"/locks/a","httpMethod":"DELETE","multiValueQueryStringParameters":{"q":["1"]},"requestContext":{"stage":"prod"}}`,
			wantStatus: 200, wantBody: "DELETE /locks/a?q=1 ", wantV1: true},
		{name: "http api payload 1.0", event: `{"version":"1.0","path":"/health","httpMethod":"GET","requestContext":{}}`,
			wantStatus: 200, wantBody: "GET /health ", wantV1: true},
		{name: "v2 wrong field type", event: `{"version":"2.0","rawPath":"/x","headers":{"x-request-id":"abc"},"body":5,"requestContext":{"http":{"method":"GET"}}}`,
			wantStatus: 400, wantBody: `"code":"invalid_json"`},
		{name: "v1 wrong field type", event: `{"path":"/x","httpMethod":"GET","body":[1]}`, wantStatus: 400, wantBody: `"code":"invalid_json"`, wantV1: true},
		{name: "bad method", event: `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"GE T"}}}`, wantStatus: 400, wantBody: `"request_id":"`},
		{name: "array", event: `[1,2]`, wantErr: true},
		{name: "string", event: ` "hello"`, wantErr: true},
		{name: "truncated", event: `{"version":"2.0",`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := p.handle(context.Background(), json.RawMessage(tt.event))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("handle = %+v, want an error", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("handle: %v", err)
			}
			var status int
			var body string
			switch r := out.(type) {
			case events.APIGatewayV2HTTPResponse:
				if tt.wantV1 {
					t.Errorf("got a payload 2.0 response, want a REST API one")
				}
				status, body = r.StatusCode, r.Body
			case events.APIGatewayProxyResponse:
				if !tt.wantV1 {
					t.Errorf("got a REST API response, want a payload 2.0 one")
				}
				status, body = r.StatusCode, r.Body
			default:
				t.Fatalf("handle returned %T", out)
			}
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("handle = %d %q, want %d containing %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestProxyServesAsNetHTTP: behind the proxy the handler is served as
// net/http's server serves it: header values as sent (the library splits
// them at commas), an implicit 200 from a handler that writes nothing, no
// body for HEAD, a payload-1.0 HTTP API path without its stage, and a
// context that ends deadlineMargin before the invocation does.
func TestProxyServesAsNetHTTP(t *testing.T) {
	var seen struct {
		reqID, accept []string
		deadline      time.Time
		hasDeadline   bool
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.reqID, seen.accept = r.Header.Values("X-Request-Id"), r.Header.Values("Accept-Encoding")
		seen.deadline, seen.hasDeadline = r.Context().Deadline()
		switch r.URL.Path {
		case "/silent": // headers only, as a static-file handler answers HEAD
			w.Header().Set("Content-Type", "text/css")
		default:
			io.WriteString(w, r.Method+" "+r.URL.Path)
		}
	})
	p := newProxy(h, slog.New(slog.DiscardHandler))
	v2 := func(t *testing.T, ctx context.Context, event string) events.APIGatewayV2HTTPResponse {
		t.Helper()
		out, err := p.handle(ctx, json.RawMessage(event))
		if err != nil {
			t.Fatal(err)
		}
		return out.(events.APIGatewayV2HTTPResponse)
	}

	r := v2(t, context.Background(), `{"version":"2.0","rawPath":"/x","headers":{"x-request-id":"abc,def","accept-encoding":"deflate, gzip"},"requestContext":{"http":{"method":"GET"}}}`)
	if r.StatusCode != 200 || len(seen.reqID) != 1 || seen.reqID[0] != "abc,def" || len(seen.accept) != 1 || !strings.Contains(seen.accept[0], "gzip") {
		t.Errorf("headers reached the handler as X-Request-Id %q, Accept-Encoding %q; want each as sent", seen.reqID, seen.accept)
	}
	if seen.hasDeadline {
		t.Errorf("a context without a deadline got one")
	}

	for _, method := range []string{"GET", "HEAD"} {
		r = v2(t, context.Background(), `{"version":"2.0","rawPath":"/silent","requestContext":{"http":{"method":"`+method+`"}}}`)
		if r.StatusCode != 200 || r.Headers["Content-Type"] != "text/css" {
			t.Errorf("%s of a handler that writes no status: %d %v, want 200 text/css", method, r.StatusCode, r.Headers)
		}
	}
	if r = v2(t, context.Background(), `{"version":"2.0","rawPath":"/page","requestContext":{"http":{"method":"HEAD"}}}`); r.StatusCode != 200 || r.Body != "" {
		t.Errorf("HEAD: %d %q, want 200 with no body", r.StatusCode, r.Body)
	}

	out, err := p.handle(context.Background(), json.RawMessage(`{"version":"1.0","resource":"/{proxy+}","path":"/dev/health","httpMethod":"GET","requestContext":{"stage":"dev"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if v1 := out.(events.APIGatewayProxyResponse); v1.StatusCode != 200 || v1.Body != "GET /health" {
		t.Errorf("payload 1.0 on stage dev: %d %q, want GET /health", v1.StatusCode, v1.Body)
	}

	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	v2(t, ctx, `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"GET"}}}`)
	if !seen.hasDeadline || !seen.deadline.Equal(deadline.Add(-deadlineMargin)) {
		t.Errorf("handler's deadline %v (%v), want the invocation's less %v", seen.deadline, seen.hasDeadline, deadlineMargin)
	}
}

// TestProxyKeepsCookies: the event's cookies reach the handler as the
// separate cookies a browser sent (the GitHub sign-in's state cookie among
// others), not joined into one value.
func TestProxyKeepsCookies(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range r.Cookies() {
			io.WriteString(w, c.Name+"="+c.Value+";")
		}
	})
	p := newProxy(h, slog.New(slog.DiscardHandler))
	out, err := p.handle(context.Background(), json.RawMessage(`{"version":"2.0","rawPath":"/auth/github/callback","cookies":["a=1","__Host-state=xyz"],"requestContext":{"http":{"method":"GET"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := out.(events.APIGatewayV2HTTPResponse); r.StatusCode != 200 || r.Body != "a=1;__Host-state=xyz;" {
		t.Errorf("cookies reached the handler as %d %q, want a=1 and __Host-state=xyz", r.StatusCode, r.Body)
	}
}

// TestProxyHTTPAPIPathIsDecoded: an HTTP API (payload 2.0 or 1.0) hands the
// path over percent-decoded, so a '%' in it is a literal '%' and must reach
// the handler escaped; a Function URL or REST API path keeps its escapes.
func TestProxyHTTPAPIPathIsDecoded(t *testing.T) {
	p := newProxy(echoHandler, slog.New(slog.DiscardHandler))
	tests := []struct{ name, event, want string }{
		// The client sent /locks/%2541 (the name "%41").
		{"http api", `{"version":"2.0","rawPath":"/locks/%41","requestContext":{"domainName":"abc.execute-api.eu-west-1.amazonaws.com","stage":"$default","http":{"method":"GET","path":"/locks/%41"}}}`,
			"GET /locks/%2541 "},
		{"http api named stage", `{"version":"2.0","rawPath":"/prod/locks/%41","requestContext":{"domainName":"abc.execute-api.eu-west-1.amazonaws.com","stage":"prod","http":{"method":"GET"}}}`,
			"GET /locks/%2541 "},
		{"http api payload 1.0", `{"version":"1.0","path":"/locks/%41","httpMethod":"GET","requestContext":{"stage":"$default"}}`,
			"GET /locks/%2541 "},
		// The client sent /locks/%41 (the name "A").
		{"function url", `{"version":"2.0","rawPath":"/locks/%41","requestContext":{"domainName":"abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws","stage":"$default","http":{"method":"GET"}}}`,
			"GET /locks/%41 "},
		{"rest api", `{"resource":"/{proxy+}","path":"/locks/%41","httpMethod":"GET","requestContext":{"stage":"prod"}}`,
			"GET /locks/%41 "},
	}
	for _, tt := range tests {
		if body := answerBody(t, p, tt.name, tt.event); body != tt.want {
			t.Errorf("%s: handler saw %q, want %q", tt.name, body, tt.want)
		}
	}
}

// answerBody hands event to p and returns the answer's body, of either
// payload format.
func answerBody(t *testing.T, p *proxy, name, event string) string {
	t.Helper()
	out, err := p.handle(context.Background(), json.RawMessage(event))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	switch r := out.(type) {
	case events.APIGatewayV2HTTPResponse:
		return r.Body
	case events.APIGatewayProxyResponse:
		return r.Body
	}
	t.Fatalf("%s: answer of type %T", name, out)
	return ""
}

// TestProxyKeepsMethodCase: the method reaches the handler as the event
// has it (the proxy library upper-cases it), so a "get" is not served as
// GET: net/http's ServeMux, as on serve, answers it 405 with an Allow
// header.
func TestProxyKeepsMethodCase(t *testing.T) {
	p := newProxy(echoHandler, slog.New(slog.DiscardHandler))
	for _, tt := range []struct{ name, event string }{
		{"payload 2.0", `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"get"}}}`},
		{"rest api", `{"resource":"/{proxy+}","path":"/x","httpMethod":"get","requestContext":{"stage":"prod"}}`},
	} {
		if body := answerBody(t, p, tt.name, tt.event); body != "get /x " {
			t.Errorf("%s: handler saw %q, want the method as sent, %q", tt.name, body, "get /x ")
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") })
	p = newProxy(mux, slog.New(slog.DiscardHandler))
	out, err := p.handle(context.Background(), json.RawMessage(`{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"get"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := out.(events.APIGatewayV2HTTPResponse); r.StatusCode != http.StatusMethodNotAllowed || r.Headers["Allow"] == "" {
		t.Errorf(`"get" of a GET route: %d %v %q, want 405 with Allow as net/http answers`, r.StatusCode, r.Headers, r.Body)
	}
}

// TestProxyKeepsRESTHeaderLines: a REST API event's multiValueHeaders are
// the header lines the client sent, and reach the API handler apart, as
// net/http hands them over on serve: a repeated X-Request-Id is echoed by
// its first value, a repeated Authorization is refused as such. (A payload
// 2.0 event's headers come joined by API Gateway and stay joined.)
func TestProxyKeepsRESTHeaderLines(t *testing.T) {
	token, _ := lockcore.NewToken()
	p := newProxy(probeAPI(), slog.New(slog.DiscardHandler))
	for _, tt := range []struct {
		name, path, header string
		values             []string
		wantID, wantError  string
	}{
		{"repeated X-Request-Id", "/no/such/route", "X-Request-Id", []string{"first", "second"}, "first", "no such route"},
		{"repeated Authorization", "/locks", "Authorization", []string{"Bearer " + token, "Bearer " + token}, "", "more than one Authorization header"},
	} {
		multi, _ := json.Marshal(map[string][]string{tt.header: tt.values})
		event := `{"resource":"/{proxy+}","path":"` + tt.path + `","httpMethod":"GET","headers":{},"multiValueHeaders":` + string(multi) + `,"requestContext":{"stage":"prod"}}`
		out, err := p.handle(context.Background(), json.RawMessage(event))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		r := out.(events.APIGatewayProxyResponse)
		if id := r.MultiValueHeaders["X-Request-Id"]; tt.wantID != "" && !slices.Equal(id, []string{tt.wantID}) {
			t.Errorf("%s: X-Request-Id %q, want %q (the first line's, as net/http reads it)", tt.name, id, tt.wantID)
		}
		if !strings.Contains(r.Body, tt.wantError) {
			t.Errorf("%s: %d %s, want an error saying %q", tt.name, r.StatusCode, r.Body, tt.wantError)
		}
	}
}
