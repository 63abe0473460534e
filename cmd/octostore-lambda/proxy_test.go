package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
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
