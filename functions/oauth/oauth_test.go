package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/lockcore"
)

var tokenRE = regexp.MustCompile(`os_[A-Za-z0-9_-]{43}`)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

func TestStartRedirectsToGitHubWithSignedState(t *testing.T) {
	e := newEnv(t, envOptions{accounts: sqliteBacking(t).open(t)})
	b := newBrowser(t)
	resp, _ := b.get(t, e.public+oauth.StartPath, browserAccept)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loc.Scheme+"://"+loc.Host+loc.Path, e.gh.srv.URL+"/login/oauth/authorize"; got != want {
		t.Errorf("redirect to %s, want %s", got, want)
	}
	q := loc.Query()
	want := map[string]string{
		"client_id":             e.gh.clientID,
		"redirect_uri":          e.public + "/auth/github/callback",
		"response_type":         "code",
		"code_challenge_method": "S256",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s=%q, want %q", k, q.Get(k), v)
		}
	}
	if q.Has("scope") {
		t.Errorf("scope %q asked for; none is needed", q.Get("scope"))
	}
	state := q.Get("state")
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(state) {
		t.Errorf("state %q is not 32 bytes of base64url", state)
	}
	if ch := q.Get("code_challenge"); len(ch) != 43 || strings.Contains(ch, state) {
		t.Errorf("code_challenge %q", ch)
	}

	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("%d cookies set, want 1", len(cookies))
	}
	c := cookies[0]
	if c.Name != oauth.StateCookie || c.Path != "/auth/github" || c.MaxAge != 600 || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Errorf("cookie %+v: want %s, Path=/auth/github, Max-Age=600, HttpOnly, SameSite=Lax, not Secure on http", c, oauth.StateCookie)
	}
	if !strings.HasPrefix(c.Value, state+".") {
		t.Errorf("cookie value %q does not carry the state %q", c.Value, state)
	}

	resp2, _ := newBrowser(t).get(t, e.public+oauth.StartPath, "")
	loc2, _ := url.Parse(resp2.Header.Get("Location"))
	if loc2.Query().Get("state") == state {
		t.Error("two sign-ins got the same state")
	}
}

func TestStartCookieFollowsPublicURL(t *testing.T) {
	accounts := sqliteBacking(t).open(t)
	for _, tc := range []struct {
		public, path, redirect string
		secure                 bool
	}{
		// At an https root the cookie is __Host-, which must have Path=/.
		{"https://locks.example.com", "/", "https://locks.example.com/auth/github/callback", true},
		{"https://locks.example.com/", "/", "https://locks.example.com/auth/github/callback", true},
		// Under a path too: a __Secure- cookie scoped to the path could be
		// planted by a sibling subdomain (Domain=example.com).
		{"https://api.example.com/prod", "/", "https://api.example.com/prod/auth/github/callback", true},
		{"http://127.0.0.1:8080", "/auth/github", "http://127.0.0.1:8080/auth/github/callback", false},
	} {
		t.Run(tc.public, func(t *testing.T) {
			f, err := oauth.New(oauth.Config{ClientID: "id", ClientSecret: "secret", PublicURL: tc.public, StateSecret: testSecret}, accounts, nil)
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			f.Start(w, httptest.NewRequest(http.MethodGet, "/auth/github", nil))
			resp := w.Result()
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d", resp.StatusCode)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc.Host != "github.com" || loc.Path != "/login/oauth/authorize" {
				t.Errorf("default GitHub URL not used: %s", loc)
			}
			if got := loc.Query().Get("redirect_uri"); got != tc.redirect {
				t.Errorf("redirect_uri %q, want %q", got, tc.redirect)
			}
			c := resp.Cookies()[0]
			if c.Secure != tc.secure || c.Path != tc.path {
				t.Errorf("cookie Secure=%v Path=%q, want %v %q", c.Secure, c.Path, tc.secure, tc.path)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			data := be.make(t)
			store := data.open(t)
			e := newEnv(t, envOptions{accounts: store})

			// JSON answer.
			b := newBrowser(t)
			resp, body := b.get(t, e.toCallback(t, b), "application/json")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := decodeToken(t, resp, body)
			if got.Login != "octocat" || got.AccountID == "" {
				t.Errorf("answer %+v", got)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			acct := mustAccount(t, store, got.Token)
			if acct.ID != got.AccountID || acct.GitHubID != 583231 || acct.Login != "octocat" {
				t.Errorf("token's account %+v, answer %+v", acct, got)
			}
			checkClearedCookie(t, resp)
			if n := countAccounts(t, store); n != 1 {
				t.Errorf("%d accounts, want 1", n)
			}

			// HTML answer, as a browser asks.
			b2 := newBrowser(t)
			resp, body = b2.get(t, e.toCallback(t, b2), browserAccept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			checkPageHeaders(t, resp)
			page := string(body)
			tokens := tokenRE.FindAllString(page, -1)
			if len(tokens) != 2 || tokens[0] != tokens[1] {
				t.Fatalf("page shows tokens %q, want the token and the curl line", tokens)
			}
			tok := tokens[0]
			curl := fmt.Sprintf(`curl -X POST %s/locks/my-lock/acquire -H "Authorization: Bearer %s"`, e.public, tok)
			if !strings.Contains(html.UnescapeString(page), curl) {
				t.Errorf("page lacks the curl line %s:\n%s", curl, page)
			}
			if strings.Contains(page, "<script") || strings.Contains(page, "src=") || strings.Contains(page, "<link") {
				t.Errorf("page loads or runs something:\n%s", page)
			}
			if acct2 := mustAccount(t, store, tok); acct2.ID != got.AccountID {
				t.Errorf("second token's account %s, want %s", acct2.ID, got.AccountID)
			}
			if tok == got.Token {
				t.Error("second sign-in got the same token")
			}

			// Tokens are stored only as their SHA-256.
			for _, tk := range []string{got.Token, tok} {
				if data.contains(t, []byte(tk)) {
					t.Errorf("the store holds the raw token %s", tk)
				}
				h := lockcore.HashToken(tk)
				if !data.contains(t, h[:]) && !data.contains(t, []byte(hexHash(tk))) {
					t.Errorf("the store holds no SHA-256 of token %s (scan broken?)", tk)
				}
			}
			checkSecretsStay(t, e, b, got.Token)
			checkSecretsStay(t, e, b2, tok)
			if !strings.Contains(e.logs.String(), got.AccountID) {
				t.Errorf("no sign-in log line for account %s:\n%s", got.AccountID, e.logs)
			}
		})
	}
}

func checkPageHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	want := map[string]string{
		"Content-Type": "text/html; charset=utf-8",
		// frame-ancestors, base-uri and form-action do not fall back to
		// default-src: without them a page with the token could be framed
		// by a browser that ignores X-Frame-Options.
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

func checkClearedCookie(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == oauth.StateCookie && c.MaxAge < 0 && c.Path == "/auth/github" {
			return
		}
	}
	t.Errorf("the state cookie is not cleared: Set-Cookie %q", resp.Header.Values("Set-Cookie"))
}

func TestSameUserTwiceAndRename(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			store := be.make(t).open(t)
			e := newEnv(t, envOptions{accounts: store})
			first := e.signInJSON(t)
			second := e.signInJSON(t)
			if first.AccountID != second.AccountID || first.Token == second.Token {
				t.Fatalf("two sign-ins of one user: %+v and %+v", first, second)
			}
			if n := countAccounts(t, store); n != 1 {
				t.Fatalf("%d accounts, want 1", n)
			}
			e.gh.setUser(583231, "octocat-renamed")
			third := e.signInJSON(t)
			if third.AccountID != first.AccountID || third.Login != "octocat-renamed" {
				t.Fatalf("after a rename: %+v, want account %s with the new login", third, first.AccountID)
			}
			if n := countAccounts(t, store); n != 1 {
				t.Fatalf("%d accounts after a rename, want 1", n)
			}
			for _, tok := range []string{first.Token, second.Token, third.Token} {
				if a := mustAccount(t, store, tok); a.ID != first.AccountID || a.Login != "octocat-renamed" {
					t.Errorf("token's account %+v", a)
				}
			}
			e.gh.setUser(99, "octocat")
			other := e.signInJSON(t)
			if other.AccountID == first.AccountID {
				t.Fatal("another GitHub user with a reused login got the same account")
			}
			if n := countAccounts(t, store); n != 2 {
				t.Fatalf("%d accounts, want 2", n)
			}
		})
	}
}

func TestTwoInstances(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			data := be.make(t)
			a, b := data.open(t), data.open(t)
			e := newEnv(t, envOptions{accounts: a, callbackAccounts: b})
			got := e.signInJSON(t)
			if acct := mustAccount(t, a, got.Token); acct.ID != got.AccountID {
				t.Errorf("instance A sees account %s, want %s", acct.ID, got.AccountID)
			}

			derived := newEnv(t, envOptions{accounts: a, callbackAccounts: b, deriveSecret: true})
			if got := derived.signInJSON(t); got.AccountID == "" {
				t.Errorf("sign-in with a state key derived from the client secret: %+v", got)
			}

			other := newEnv(t, envOptions{accounts: a, callbackAccounts: b, callbackSecret: []byte("another-secret-another-secret-another")})
			br := newBrowser(t)
			resp, body := br.get(t, other.toCallback(t, br), "application/json")
			checkError(t, resp, body, http.StatusBadRequest, "invalid_oauth_state")
		})
	}
}

func TestStateRejected(t *testing.T) {
	store := sqliteBacking(t).open(t)
	e := newEnv(t, envOptions{accounts: store})
	cbURL := e.public + oauth.CallbackPath

	// cookieOf returns the state cookie a browser holds.
	cookieOf := func(t *testing.T, b *browser) *http.Cookie {
		u, _ := url.Parse(cbURL)
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == oauth.StateCookie {
				return c
			}
		}
		t.Fatal("no state cookie in the jar")
		return nil
	}
	setCookie := func(b *browser, value string) {
		u, _ := url.Parse(cbURL)
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: oauth.StateCookie, Value: value, Path: "/auth/github"}})
	}
	withState := func(cb, state string) string {
		u, _ := url.Parse(cb)
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
		return u.String()
	}

	cases := []struct {
		name string
		// prepare runs the flow up to the callback and returns the browser
		// and the callback URL to visit.
		prepare func(t *testing.T) (*browser, string)
	}{
		{"no cookie", func(t *testing.T) (*browser, string) {
			cb := e.toCallback(t, newBrowser(t))
			return newBrowser(t), cb
		}},
		{"another browser's cookie", func(t *testing.T) (*browser, string) {
			victim := e.toCallback(t, newBrowser(t))
			attacker := newBrowser(t)
			e.toCallback(t, attacker) // a cookie of its own sign-in
			return attacker, victim
		}},
		{"forged MAC", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb := e.toCallback(t, b)
			v := cookieOf(t, b).Value
			parts := strings.Split(v, ".")
			parts[2] = strings.Repeat("A", len(parts[2]))
			setCookie(b, strings.Join(parts, "."))
			return b, cb
		}},
		{"state swapped under a valid MAC", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb := e.toCallback(t, b)
			parts := strings.Split(cookieOf(t, b).Value, ".")
			parts[0] = flipFirst(parts[0])
			setCookie(b, strings.Join(parts, "."))
			return b, withState(cb, parts[0])
		}},
		{"expiry extended under a valid MAC", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb := e.toCallback(t, b)
			parts := strings.Split(cookieOf(t, b).Value, ".")
			parts[1] = "99999999999"
			setCookie(b, strings.Join(parts, "."))
			e.clock.Advance(oauth.StateTTL + time.Second)
			return b, cb
		}},
		{"malformed cookie", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb := e.toCallback(t, b)
			setCookie(b, "garbage")
			return b, cb
		}},
		{"expired", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb := e.toCallback(t, b)
			e.clock.Advance(oauth.StateTTL)
			return b, cb
		}},
		{"state parameter differs", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb := e.toCallback(t, b)
			return b, withState(cb, strings.Repeat("A", 43))
		}},
		{"state parameter missing", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb, _ := url.Parse(e.toCallback(t, b))
			q := cb.Query()
			q.Del("state")
			cb.RawQuery = q.Encode()
			return b, cb.String()
		}},
		{"code missing", func(t *testing.T) (*browser, string) {
			b := newBrowser(t)
			cb, _ := url.Parse(e.toCallback(t, b))
			q := cb.Query()
			q.Del("code")
			cb.RawQuery = q.Encode()
			return b, cb.String()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := e.gh.counts()
			b, cb := tc.prepare(t)
			resp, body := b.get(t, cb, "application/json")
			checkError(t, resp, body, http.StatusBadRequest, "invalid_oauth_state")
			if after, _ := e.gh.counts(); after != before {
				t.Errorf("the code was exchanged (%d exchanges) despite a bad state", after-before)
			}
			if n := countAccounts(t, store); n != 0 {
				t.Errorf("%d accounts created", n)
			}
		})
	}

	t.Run("a valid state still works after those", func(t *testing.T) {
		e.signInJSON(t)
	})

	// A stale or planted cookie of the same name (e.g. one set on a more
	// specific path, which a browser sends first) must not hide the
	// genuine one: any authentic cookie carrying the state is enough.
	t.Run("a planted cookie sent first does not hide the genuine one", func(t *testing.T) {
		b := newBrowser(t)
		cb := e.toCallback(t, b)
		u, _ := url.Parse(cbURL)
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: oauth.StateCookie, Value: "planted.1.x", Path: oauth.CallbackPath}})
		req, err := http.NewRequest(http.MethodGet, cb, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range b.c.Jar.Cookies(u) {
			req.AddCookie(c)
		}
		if got := req.CookiesNamed(oauth.StateCookie); len(got) != 2 || got[0].Value != "planted.1.x" {
			t.Fatalf("the browser would send %v, want the planted cookie first and the genuine one", got)
		}
		resp, body := b.get(t, cb, "application/json")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
		}
		if got := decodeToken(t, resp, body); got.Login != "octocat" {
			t.Errorf("answer %+v", got)
		}
	})

	t.Run("html for browsers", func(t *testing.T) {
		resp, body := newBrowser(t).get(t, cbURL+"?code=abc&state=def", browserAccept)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
		checkPageHeaders(t, resp)
		page := string(body)
		if !strings.Contains(page, "invalid_oauth_state") || !strings.Contains(page, resp.Header.Get("X-Request-Id")) || !strings.Contains(page, e.public+"/auth/github") {
			t.Errorf("error page lacks the code, the request id or the restart link:\n%s", page)
		}
	})
	checkSecretsStay(t, e, nil)
}

// flipFirst changes the first character of s to another base64url one.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestAcceptNegotiation(t *testing.T) {
	e := newEnv(t, envOptions{accounts: sqliteBacking(t).open(t)})
	for _, tc := range []struct {
		accept string
		json   bool
	}{
		{"", false},
		{browserAccept, false},
		{"*/*", false},
		{"application/json", true},
		{"application/json, text/plain, */*", true},
		{"application/json, text/html", true},
		{"text/html;q=0.5, application/json", true},
		{"application/json;q=0.5, text/html", false},
		{"application/json;q=0", false},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			resp, body := newBrowser(t).get(t, e.public+oauth.CallbackPath+"?code=x&state=y", tc.accept)
			isJSON := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")
			if isJSON != tc.json {
				t.Errorf("Accept %q: Content-Type %q, want JSON %v", tc.accept, resp.Header.Get("Content-Type"), tc.json)
			}
			if isJSON {
				checkError(t, resp, body, http.StatusBadRequest, "invalid_oauth_state")
			}
		})
	}
}

func TestGitHubDenied(t *testing.T) {
	store := sqliteBacking(t).open(t)
	e := newEnv(t, envOptions{accounts: store})
	for _, tc := range []struct {
		githubError string
		status      int
		code        string
	}{
		{"access_denied", http.StatusBadGateway, "oauth_failed"},
		{"redirect_uri_mismatch", http.StatusBadGateway, "oauth_failed"},
		{"application_suspended", http.StatusBadGateway, "oauth_failed"},
	} {
		t.Run(tc.githubError, func(t *testing.T) {
			e.gh.setDeny(tc.githubError)
			b := newBrowser(t)
			resp, body := b.get(t, e.toCallback(t, b), "application/json")
			checkError(t, resp, body, tc.status, tc.code)
			checkClearedCookie(t, resp)
			if n := countAccounts(t, store); n != 0 {
				t.Errorf("%d accounts created", n)
			}
		})
	}
	t.Run("forged denial without the cookie", func(t *testing.T) {
		resp, body := newBrowser(t).get(t, e.public+oauth.CallbackPath+"?error=access_denied&state=x", "application/json")
		checkError(t, resp, body, http.StatusBadRequest, "invalid_oauth_state")
	})
}

// hangCutoff is a transport for the flow's calls to the fake GitHub that
// gives up on a call to path (when set) after 300 ms, as a client with a
// short timeout would; every other call is bounded only by the flow's own
// timeout (oauth.DefaultGitHubTimeout). Only a call the fake will never
// answer gets the short deadline, so no call that is answered races it.
type hangCutoff struct {
	base http.RoundTripper
	path atomic.Pointer[string]
}

func (h *hangCutoff) RoundTrip(r *http.Request) (*http.Response, error) {
	if p := h.path.Load(); p == nil || *p != r.URL.Path {
		return h.base.RoundTrip(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 300*time.Millisecond)
	resp, err := h.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func TestGitHubFailures(t *testing.T) {
	store := sqliteBacking(t).open(t)
	// The calls the fake hangs on are given up after 300 ms; the others
	// (including those of "a working GitHub afterwards") are not raced
	// against a short deadline.
	cutoff := &hangCutoff{base: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(cutoff.base.(*http.Transport).CloseIdleConnections)
	e := newEnv(t, envOptions{accounts: store, httpClient: &http.Client{Transport: cutoff}})
	hangPath := func(token, user string) *string {
		switch {
		case token == failHang:
			p := "/login/oauth/access_token"
			return &p
		case user == failHang:
			p := "/user"
			return &p
		}
		return nil
	}
	for _, tc := range []struct{ name, token, user string }{
		{"token: error answer", failErrorJSON, failNone},
		{"token: 500", failStatus500, failNone},
		{"token: bad JSON", failBadJSON, failNone},
		{"token: no access token", failNoToken, failNone},
		{"token: timeout", failHang, failNone},
		{"token: not a bearer token", failMacToken, failNone},
		{"token: expires_in a string", failOddExpiry, failNone},
		{"user: 500", failNone, failStatus500},
		{"user: bad JSON", failNone, failBadJSON},
		{"user: timeout", failNone, failHang},
		{"user: id 0", failNone, failZeroID},
		{"user: id of the wrong type", failNone, failWrongTypes},
		{"user: login failing validation", failNone, failBadLogin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.gh.setFailures(tc.token, tc.user)
			cutoff.path.Store(hangPath(tc.token, tc.user))
			b := newBrowser(t)
			resp, body := b.get(t, e.toCallback(t, b), "application/json")
			checkError(t, resp, body, http.StatusBadGateway, "oauth_failed")
			if n := countAccounts(t, store); n != 0 {
				t.Errorf("%d accounts created", n)
			}
			exchanges, _ := e.gh.counts()
			if exchanges == 0 {
				t.Error("the fake was never asked: the case tests nothing")
			}
		})
	}
	cutoff.path.Store(nil)
	t.Run("html for browsers", func(t *testing.T) {
		e.gh.setFailures(failNone, failBadLogin)
		b := newBrowser(t)
		resp, body := b.get(t, e.toCallback(t, b), browserAccept)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d", resp.StatusCode)
		}
		checkPageHeaders(t, resp)
		if strings.Contains(string(body), "<script>alert") {
			t.Errorf("the hostile login reached the page:\n%s", body)
		}
		if !strings.Contains(string(body), "oauth_failed") {
			t.Errorf("page lacks the code:\n%s", body)
		}
	})
	t.Run("a working GitHub afterwards", func(t *testing.T) {
		e.gh.setFailures(failNone, failNone)
		e.signInJSON(t)
	})
	checkSecretsStay(t, e, nil)
	if !strings.Contains(e.logs.String(), "oauth_failed") {
		t.Errorf("failures were not logged:\n%s", e.logs)
	}
}

// failingAccounts is a real store whose GitHub upsert fails with err.
type failingAccounts struct {
	lockcore.Accounts
	err error
}

func (f failingAccounts) UpsertGitHubAccount(context.Context, int64, string) (lockcore.Account, error) {
	return lockcore.Account{}, f.err
}

func TestStoreFailures(t *testing.T) {
	store := sqliteBacking(t).open(t)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"unavailable", fmt.Errorf("dial: %w", lockcore.ErrUnavailable), http.StatusServiceUnavailable, "store_unavailable"},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "store_unavailable"},
		{"a bug", errors.New("something unexpected"), http.StatusInternalServerError, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{accounts: failingAccounts{store, tc.err}})
			b := newBrowser(t)
			resp, body := b.get(t, e.toCallback(t, b), "application/json")
			a := checkError(t, resp, body, tc.status, tc.code)
			if strings.Contains(a.Error, "unexpected") || strings.Contains(a.Error, "dial") {
				t.Errorf("error detail leaked to the client: %q", a.Error)
			}
			wantRetry := ""
			if tc.status == http.StatusServiceUnavailable {
				wantRetry = "1"
			}
			if got := resp.Header.Get("Retry-After"); got != wantRetry {
				t.Errorf("Retry-After %q, want %q", got, wantRetry)
			}
			if !strings.Contains(e.logs.String(), tc.err.Error()) {
				t.Errorf("the log lacks the store error:\n%s", e.logs)
			}
		})
	}
	t.Run("closed store", func(t *testing.T) {
		closed := sqliteBacking(t).open(t)
		closed.Close()
		e := newEnv(t, envOptions{accounts: closed})
		b := newBrowser(t)
		resp, body := b.get(t, e.toCallback(t, b), "application/json")
		if resp.StatusCode < 500 || resp.StatusCode == http.StatusBadGateway {
			t.Fatalf("status %d (%s), want a store failure", resp.StatusCode, body)
		}
	})
}

func TestDisabled(t *testing.T) {
	disabled, err := oauth.New(oauth.Config{PublicURL: "https://x.example"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if disabled.Enabled() || (oauth.Config{}).Enabled() {
		t.Fatal("a config without a GitHub app is enabled")
	}
	var nilFlow *oauth.Flow
	for name, f := range map[string]*oauth.Flow{"disabled": disabled, "nil": nilFlow} {
		for _, h := range []struct {
			path string
			fn   http.HandlerFunc
		}{{oauth.StartPath, f.Start}, {oauth.CallbackPath + "?code=a&state=b", f.Callback}} {
			t.Run(name+h.path, func(t *testing.T) {
				w := httptest.NewRecorder()
				w.Header().Set("X-Request-Id", "req-1")
				h.fn(w, httptest.NewRequest(http.MethodGet, h.path, nil))
				resp := w.Result()
				a := checkError(t, resp, w.Body.Bytes(), http.StatusNotFound, "oauth_disabled")
				if a.RequestID != "req-1" {
					t.Errorf("request_id %q", a.RequestID)
				}
				if len(resp.Cookies()) != 0 {
					t.Error("a disabled flow set a cookie")
				}
			})
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	store := sqliteBacking(t).open(t)
	good := oauth.Config{ClientID: "id", ClientSecret: "secret", PublicURL: "https://locks.example.com", StateSecret: testSecret}
	if _, err := oauth.New(good, store, nil); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	derived := good
	derived.StateSecret, derived.ClientSecret = nil, strings.Repeat("0123456789", 4)
	if _, err := oauth.New(derived, store, nil); err != nil {
		t.Fatalf("config deriving the state key from a 40-byte client secret refused: %v", err)
	}
	for _, ok := range []oauth.Config{good, derived, {PublicURL: "not a URL"}} {
		if err := ok.Check(); err != nil {
			t.Fatalf("Check of a config New accepts (or a disabled one): %v", err)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*oauth.Config)
		nilAcc bool
	}{
		{"no client secret", func(c *oauth.Config) { c.ClientSecret = "" }, false},
		{"no client id", func(c *oauth.Config) { c.ClientID = "" }, false},
		{"short state secret", func(c *oauth.Config) { c.StateSecret = testSecret[:31] }, false},
		{"no state secret, short client secret", func(c *oauth.Config) { c.StateSecret = nil; c.ClientSecret = strings.Repeat("s", 31) }, false},
		{"no public URL", func(c *oauth.Config) { c.PublicURL = "" }, false},
		{"relative public URL", func(c *oauth.Config) { c.PublicURL = "locks.example.com" }, false},
		{"public URL with a query", func(c *oauth.Config) { c.PublicURL = "https://x.example/?a=b" }, false},
		{"ftp public URL", func(c *oauth.Config) { c.PublicURL = "ftp://x.example" }, false},
		{"bad base URL", func(c *oauth.Config) { c.BaseURL = "github.com" }, false},
		{"bad API URL", func(c *oauth.Config) { c.APIURL = "https://user:pw@api.github.com" }, false},
		{"no store", func(*oauth.Config) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			var acc lockcore.Accounts = store
			if tc.nilAcc {
				acc = nil
			}
			f, err := oauth.New(cfg, acc, nil)
			if err == nil {
				t.Fatalf("accepted: %+v", f)
			}
			// Check, which needs no store, refuses the same configurations
			// with the same words.
			if tc.nilAcc {
				return
			}
			if cerr := cfg.Check(); cerr == nil || cerr.Error() != err.Error() {
				t.Fatalf("Check: %v; want New's error %q", cerr, err)
			}
		})
	}
}

// FuzzCallback feeds the callback arbitrary queries and cookies: without a
// cookie signed by the flow's key none may get past the state check, and
// none may cause a panic or a 5xx.
func FuzzCallback(f *testing.F) {
	flow, err := oauth.New(oauth.Config{
		ClientID: "id", ClientSecret: "secret", PublicURL: "https://locks.example.com", StateSecret: testSecret,
		BaseURL: "http://127.0.0.1:1", APIURL: "http://127.0.0.1:1", // never reached
	}, failingAccounts{err: errors.New("the store must not be reached")}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("code=abc&state=def", "octostore_oauth_state=def.99999999999.AAAA")
	f.Add("error=access_denied&state=x", "octostore_oauth_state=x.1.y")
	f.Add("state=%zz&code=%", "octostore_oauth_state=..; octostore_oauth_state=...")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, query, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "/auth/github/callback", nil)
		r.URL.RawQuery = query
		r.Header.Set("Cookie", cookie)
		r.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		w.Header().Set("X-Request-Id", "req-fuzz")
		flow.Callback(w, r)
		checkError(t, w.Result(), w.Body.Bytes(), http.StatusBadRequest, "invalid_oauth_state")
	})
}

// TestHTTPSStateCookieIsPrefixed: on an https public URL the state cookie
// carries the __Host- prefix browsers enforce (also under a path, where
// the name ends with a hash of the path: a __Secure- cookie could be
// planted by a sibling subdomain with a Domain attribute), so a cookie planted by a sibling subdomain or over plain http,
// which cannot carry it, is not taken for the state cookie: the callback
// refuses a request whose state cookie has the bare name, and accepts the
// same value under the prefixed name (it then fails at GitHub, which here
// does not answer, with 502).
func TestHTTPSStateCookieIsPrefixed(t *testing.T) {
	store := sqliteBacking(t).open(t)
	for _, tc := range []struct{ public, name, path string }{
		{"https://locks.example.com", "__Host-octostore_oauth_state", "/"},
		{"https://example.com/locks", "__Host-octostore_oauth_state_68520cf076af", "/"},
		{"https://example.com/prod", "__Host-octostore_oauth_state_" + hexPrefix("/prod"), "/"},
		{"http://127.0.0.1:8080", "octostore_oauth_state", "/auth/github"},
	} {
		t.Run(tc.public, func(t *testing.T) {
			f, err := oauth.New(oauth.Config{ClientID: "id", ClientSecret: strings.Repeat("s", 40), PublicURL: tc.public,
				BaseURL: "http://127.0.0.1:1", APIURL: "http://127.0.0.1:1"}, store, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			f.Start(rec, httptest.NewRequest("GET", tc.public+oauth.StartPath, nil))
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 || cookies[0].Name != tc.name || cookies[0].Path != tc.path || cookies[0].Secure != strings.HasPrefix(tc.public, "https") {
				t.Fatalf("state cookie %+v, want name %s, path %s", cookies, tc.name, tc.path)
			}
			loc, _ := url.Parse(rec.Header().Get("Location"))
			state := loc.Query().Get("state")
			callback := func(name string) int {
				req := httptest.NewRequest("GET", tc.public+oauth.CallbackPath+"?code=c&state="+url.QueryEscape(state), nil)
				req.Header.Set("Accept", "application/json")
				req.AddCookie(&http.Cookie{Name: name, Value: cookies[0].Value})
				rec := httptest.NewRecorder()
				f.Callback(rec, req)
				return rec.Code
			}
			if tc.name != oauth.StateCookie {
				if got := callback(oauth.StateCookie); got != http.StatusBadRequest {
					t.Errorf("callback with the bare-named cookie: %d, want 400", got)
				}
			}
			if got := callback(tc.name); got != http.StatusBadGateway {
				t.Errorf("callback with the state cookie: %d, want 502 (past the state check)", got)
			}
		})
	}
}

// hexPrefix is the first 6 bytes of SHA-256(s) in hex.
func hexPrefix(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}
