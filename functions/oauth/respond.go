package oauth

import (
	"bytes"
	"encoding/json"
	"html/template"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/octostore/octostore/lockcore"
)

// Error codes this package answers with.
const (
	codeDisabled = "oauth_disabled"
	codeBadState = "invalid_oauth_state"
	codeFailed   = "oauth_failed"
	msgFailed    = "GitHub did not answer as expected; try signing in again."
)

// flowError is a failed callback: what the client is told (status, code,
// msg) and, separately, what the log gets.
type flowError struct {
	status     int
	code       string
	msg        string
	log        string
	retryAfter bool
}

// errorBody is the contract's error body, in its field order.
type errorBody struct {
	Error     string `json:"error"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
}

// tokenBody is the JSON answer of a successful sign-in.
type tokenBody struct {
	Token     string `json:"token"`
	AccountID string `json:"account_id"`
	Login     string `json:"login"`
}

// writeDisabled answers 404 oauth_disabled, always as JSON: it is the
// same kind of answer as an unknown route.
func writeDisabled(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, errorBody{
		Error:     "GitHub sign-in is not configured on this server.",
		Code:      codeDisabled,
		RequestID: w.Header().Get("X-Request-Id"),
	})
}

// fail logs e (warning for the client's or GitHub's fault, error for ours)
// and answers it as JSON or as an HTML page.
func (f *Flow) fail(w http.ResponseWriter, r *http.Request, e *flowError) {
	reqID := w.Header().Get("X-Request-Id")
	level := slog.LevelWarn
	if e.status >= 500 && e.status != http.StatusBadGateway {
		level = slog.LevelError
	}
	f.log.LogAttrs(r.Context(), level, "github sign-in failed",
		slog.String("request_id", reqID),
		slog.Int("status", e.status),
		slog.String("code", e.code),
		slog.String("detail", e.log))
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if e.retryAfter {
		h.Set("Retry-After", "1")
	}
	if wantsJSON(r) {
		writeJSON(w, e.status, errorBody{Error: e.msg, Code: e.code, RequestID: reqID})
		return
	}
	writeHTML(w, e.status, errorPage, errorData{
		Title:     http.StatusText(e.status),
		Status:    e.status,
		Message:   e.msg,
		Code:      e.code,
		RequestID: reqID,
		StartURL:  f.public + StartPath,
	})
}

// writeToken shows the new token once, as JSON or as an HTML page.
func (f *Flow) writeToken(w http.ResponseWriter, r *http.Request, token string, acct lockcore.Account) {
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, tokenBody{Token: token, AccountID: acct.ID, Login: acct.Login})
		return
	}
	writeHTML(w, http.StatusOK, tokenPage, tokenData{
		Login:     acct.Login,
		AccountID: acct.ID,
		Token:     token,
		Curl:      `curl -X POST ` + f.public + `/locks/my-lock/acquire -H "Authorization: Bearer ` + token + `"`,
	})
}

// writeJSON writes v as the contract's JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the bodies here are plain structs of strings.
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeHTML renders a page with headers that forbid scripts, framing,
// caching and referrers.
func writeHTML(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		// The templates are fixed and their data are strings; this is a
		// bug, answered without details.
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "Internal error.", Code: "internal", RequestID: w.Header().Get("X-Request-Id")})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// wantsJSON reports whether the request asks for JSON: its Accept header
// names application/json with a non-zero quality that text/html does not
// beat. Browsers (which name text/html, not application/json) get HTML, and
// so does a request without Accept.
func wantsJSON(r *http.Request) bool {
	jsonQ, htmlQ := -1.0, -1.0
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 1 {
					q = v
				}
			}
			switch mt {
			case "application/json":
				jsonQ = max(jsonQ, q)
			case "text/html":
				htmlQ = max(htmlQ, q)
			}
		}
	}
	return jsonQ > 0 && jsonQ >= htmlQ
}

type errorData struct {
	Title     string
	Status    int
	Message   string
	Code      string
	RequestID string
	StartURL  string
}

type tokenData struct {
	Login     string
	AccountID string
	Token     string
	Curl      string
}

const pageStyle = `<style>
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f8fa;color:#1f2328}
main{max-width:46rem;margin:3rem auto;padding:2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}
h1{font-size:1.4rem;margin-top:0}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.75rem;white-space:pre-wrap;overflow-wrap:anywhere;user-select:all}
.warn{color:#9a6700}
.small{color:#59636e;font-size:.875rem}
a{color:#0969da}
</style>`

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>OctoStore sign-in: {{.Title}}</title>` + pageStyle + `</head>
<body><main>
<h1>Sign-in failed</h1>
<p>{{.Message}}</p>
<p><a href="{{.StartURL}}">Sign in with GitHub again</a></p>
<p class="small">Status {{.Status}}, code <code>{{.Code}}</code>{{if .RequestID}}, request id <code>{{.RequestID}}</code>{{end}}.</p>
</main></body></html>
`))

var tokenPage = template.Must(template.New("token").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>OctoStore: your token</title>` + pageStyle + `</head>
<body><main>
<h1>Signed in as {{.Login}}</h1>
<p>Your new bearer token:</p>
<pre id="token">{{.Token}}</pre>
<p class="warn">It is shown only this once: copy it now and keep it secret. Signing in again makes another token; the old ones keep working until rotated.</p>
<p>Try it:</p>
<pre id="curl">{{.Curl}}</pre>
<p class="small">Account <code id="account">{{.AccountID}}</code>. Rotate a token with <code>POST /auth/token/rotate</code>.</p>
</main></body></html>
`))
