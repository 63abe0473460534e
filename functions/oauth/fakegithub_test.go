package oauth_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Failure modes of the fake's token and user endpoints.
const (
	failNone       = ""
	failErrorJSON  = "error-json"  // 200 {"error":"bad_verification_code"}, as GitHub does
	failStatus500  = "status-500"  // 500 with a body
	failBadJSON    = "bad-json"    // 200 with a body that is not JSON
	failHang       = "hang"        // no answer until the client gives up
	failNoToken    = "no-token"    // token endpoint: 200 {} without access_token
	failZeroID     = "zero-id"     // user endpoint: id 0
	failBadLogin   = "bad-login"   // user endpoint: a login that breaks lockcore.ValidateLogin
	failWrongTypes = "wrong-types" // user endpoint: id as a string
	failMacToken   = "mac-token"   // token endpoint: a working access token of type "mac", not bearer
	failOddExpiry  = "odd-expiry"  // token endpoint: expires_in a string holding a secret
)

// fakeGitHub is an httptest server that speaks the part of GitHub's OAuth
// web flow and REST API that the package uses, and checks what it is sent
// as GitHub would (client credentials, single-use codes bound to their
// redirect_uri and PKCE challenge, bearer access tokens).
type fakeGitHub struct {
	t            *testing.T
	srv          *httptest.Server
	clientID     string
	clientSecret string
	stop         chan struct{} // closed at cleanup, releases hanging handlers

	mu         sync.Mutex
	userID     int64
	login      string
	deny       string // authorize redirects back with this error (e.g. access_denied)
	tokenFail  string
	userFail   string
	codes      map[string]*grant
	access     map[string]bool
	issued     []string // every code and access token handed out
	requests   []string // every request URI seen
	exchanges  int
	userCalled int
}

type grant struct {
	redirectURI string
	challenge   string
	used        bool
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	t.Helper()
	g := &fakeGitHub{
		t:            t,
		clientID:     "Iv1.fakeclient",
		clientSecret: "fake-client-secret-" + randHex(8),
		stop:         make(chan struct{}),
		userID:       583231,
		login:        "octocat",
		codes:        map[string]*grant{},
		access:       map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", g.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", g.token)
	mux.HandleFunc("GET /user", g.user)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.requests = append(g.requests, r.URL.RequestURI())
		g.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(g.stop)
		g.srv.Close()
	})
	return g
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func (g *fakeGitHub) setUser(id int64, login string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.userID, g.login = id, login
}

func (g *fakeGitHub) setFailures(token, user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokenFail, g.userFail = token, user
}

func (g *fakeGitHub) setDeny(e string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deny = e
}

// secrets returns every code and access token the fake handed out.
func (g *fakeGitHub) secrets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.issued...)
}

func (g *fakeGitHub) counts() (exchanges, userCalls int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exchanges, g.userCalled
}

// authorize plays the user approving the app: it redirects back to
// redirect_uri with a fresh code and the state it was given.
func (g *fakeGitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != g.clientID || q.Get("response_type") != "code" {
		http.Error(w, "bad client_id or response_type", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 challenge required", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	g.mu.Lock()
	if g.deny != "" {
		back.Set("error", g.deny)
		back.Set("error_description", "The user has denied your application access.")
	} else {
		code := randHex(10)
		g.codes[code] = &grant{redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
		g.issued = append(g.issued, code)
		back.Set("code", code)
	}
	g.mu.Unlock()
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// token exchanges a code for an access token.
func (g *fakeGitHub) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.exchanges++
	fail := g.tokenFail
	g.mu.Unlock()
	switch fail {
	case failHang:
		select {
		case <-r.Context().Done():
		case <-g.stop:
		}
		return
	case failStatus500:
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case failBadJSON:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token": "gho_trunc`)
		return
	case failErrorJSON:
		writeFakeJSON(w, map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
		return
	case failNoToken:
		writeFakeJSON(w, map[string]string{"scope": ""})
		return
	case failOddExpiry:
		// A parser's error may quote the value it could not use.
		secret := "gho_" + randHex(18)
		g.mu.Lock()
		g.issued = append(g.issued, secret)
		g.mu.Unlock()
		writeFakeJSON(w, map[string]string{"access_token": secret, "token_type": "bearer", "expires_in": secret})
		return
	}
	f := r.PostForm
	if f.Get("client_id") != g.clientID || f.Get("client_secret") != g.clientSecret {
		writeFakeJSON(w, map[string]string{"error": "incorrect_client_credentials"})
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		writeFakeJSON(w, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gr := g.codes[f.Get("code")]
	switch {
	case gr == nil || gr.used:
		writeFakeJSON(w, map[string]string{"error": "bad_verification_code"})
		return
	case gr.redirectURI != f.Get("redirect_uri"):
		writeFakeJSON(w, map[string]string{"error": "redirect_uri_mismatch"})
		return
	case s256(f.Get("code_verifier")) != gr.challenge:
		writeFakeJSON(w, map[string]string{"error": "bad_verification_code", "error_description": "PKCE verification failed"})
		return
	}
	gr.used = true
	tok := "gho_" + randHex(18)
	g.access[tok] = true
	g.issued = append(g.issued, tok)
	tokenType := "bearer"
	if fail == failMacToken {
		tokenType = "mac"
	}
	writeFakeJSON(w, map[string]string{"access_token": tok, "token_type": tokenType, "scope": ""})
}

// user answers GET /user for a valid access token.
func (g *fakeGitHub) user(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.userCalled++
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	known := ok && g.access[tok]
	fail, id, login := g.userFail, g.userID, g.login
	g.mu.Unlock()
	if !known {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Accept") != "application/vnd.github+json" {
		http.Error(w, "unexpected Accept", http.StatusNotAcceptable)
		return
	}
	switch fail {
	case failHang:
		select {
		case <-r.Context().Done():
		case <-g.stop:
		}
		return
	case failStatus500:
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case failBadJSON:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `<html>not json</html>`)
		return
	case failZeroID:
		id = 0
	case failBadLogin:
		login = `<script>alert("x")</script>`
	case failWrongTypes:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"login":%q,"id":"%d"}`, login, id)
		return
	}
	writeFakeJSON(w, map[string]any{"login": login, "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": false})
}

func writeFakeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
