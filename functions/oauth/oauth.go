// Package oauth is OctoStore's "Sign in with GitHub": the two HTTP handlers
// GET /auth/github (Start) and GET /auth/github/callback (Callback).
//
// The flow keeps no server memory, so any number of stateless instances can
// serve it: Start puts a random state in GitHub's authorize URL and in a
// short-lived, HMAC-SHA256-signed, HttpOnly, SameSite=Lax cookie; Callback
// accepts GitHub's redirect only when that cookie is present, untampered,
// unexpired and carries the same state, whichever instance signed it (all
// instances share Config.StateSecret, or by default a key derived from the
// GitHub client secret, which they share anyway). The code is exchanged with
// golang.org/x/oauth2 (with a PKCE S256 challenge whose verifier is derived
// from the state with the same secret), GitHub's user is fetched from
// GET /user, upserted by its numeric id, and a new bearer token is issued and
// shown once: an HTML page with a ready curl line, or JSON
// {"token","account_id","login"} when the request asks Accept:
// application/json.
//
// The bearer token, the authorization code and GitHub's access token are
// never put in a URL, a redirect or a log line; only the token's SHA-256
// reaches the store.
//
// Errors use the contract's codes and body {"error","code","request_id"}
// (the request id is read back from the X-Request-Id response header that
// the caller's middleware set): 404 oauth_disabled, 400 invalid_oauth_state,
// 502 oauth_failed (GitHub did not sign the user in, including when the user
// declined: the contract has no other code for it), 503
// store_unavailable (with Retry-After) and 500 internal. Callback answers
// browsers (requests not asking for JSON) with a small HTML page instead.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/octostore/octostore/lockcore"
)

// Paths of the two routes, and the callback path GitHub redirects back to
// (PublicURL + CallbackPath must be the OAuth app's callback URL).
const (
	StartPath    = "/auth/github"
	CallbackPath = "/auth/github/callback"
)

// StateTTL is how long a sign-in may take between Start and Callback.
const StateTTL = 10 * time.Minute

// MinStateSecretLen is the shortest accepted Config.StateSecret, and the
// shortest client secret a state key is derived from, in bytes.
const MinStateSecretLen = 32

// Default endpoints and timeouts.
const (
	// DefaultBaseURL is GitHub's web origin.
	DefaultBaseURL = "https://github.com"
	// DefaultAPIURL is GitHub's REST API origin.
	DefaultAPIURL = "https://api.github.com"
	// DefaultGitHubTimeout bounds each call to GitHub (token exchange,
	// GET /user) when Config.HTTPClient is nil.
	DefaultGitHubTimeout = 10 * time.Second
	// storeTimeout bounds the store work of one callback.
	storeTimeout = 5 * time.Second
	// MaxCallbackTime is the longest a callback can take with the default
	// GitHub timeout: the token exchange, GET /user and the store work, each
	// at its own bound. A deployment that cuts requests shorter (a Lambda's
	// Timeout) can fail sign-ins that GitHub answers slowly.
	MaxCallbackTime = 2*DefaultGitHubTimeout + storeTimeout
)

// Config configures the GitHub sign-in. The zero value is a disabled flow.
type Config struct {
	// ClientID and ClientSecret are the GitHub OAuth app's credentials.
	// Setting either enables the flow (and New then requires both).
	ClientID, ClientSecret string
	// PublicURL is the externally visible base URL of the service, e.g.
	// https://locks.example.com, or with a path prefix such as an API
	// Gateway stage (https://x.execute-api.eu-west-1.amazonaws.com/prod);
	// no query or fragment. The callback is PublicURL + CallbackPath. The
	// state cookie is Secure iff PublicURL is https; on http its Path is the
	// prefix + StartPath, on https it is the host-only "__Host-" cookie with
	// Path=/ (see StateCookie).
	PublicURL string
	// StateSecret is the HMAC key signing the state cookie, at least
	// MinStateSecretLen bytes, the same on every instance. When empty, the
	// key is derived (HMAC-SHA256) from ClientSecret, which every instance
	// has anyway; that needs a ClientSecret of at least MinStateSecretLen
	// bytes (GitHub's are 40). Changing the key only fails sign-ins that
	// are in progress.
	StateSecret []byte
	// BaseURL is GitHub's web origin, for /login/oauth/authorize and
	// /login/oauth/access_token. Default DefaultBaseURL.
	BaseURL string
	// APIURL is GitHub's API origin, for GET /user. Default DefaultAPIURL.
	APIURL string
	// HTTPClient makes the calls to GitHub. Default: a client with a
	// DefaultGitHubTimeout timeout. Its Timeout, when set, also bounds each
	// call's context.
	HTTPClient *http.Client
	// Now is the clock used for the state cookie's expiry. Default time.Now.
	Now func() time.Time
}

// Enabled reports whether a GitHub app is configured (ClientID or
// ClientSecret set). A disabled flow answers 404 oauth_disabled.
func (c Config) Enabled() bool { return c.ClientID != "" || c.ClientSecret != "" }

// Flow serves the GitHub sign-in. A nil *Flow, or one made from a disabled
// Config, answers both routes with 404 oauth_disabled. A Flow is safe for
// concurrent use and holds no per-sign-in state.
type Flow struct {
	enabled    bool
	oauth      oauth2.Config
	userURL    string
	public     string // PublicURL without a trailing slash
	secure     bool   // Secure cookie
	cookieName string // StateCookie, prefixed on https
	cookiePath string // see cookieNameAndPath
	secret     []byte
	client     *http.Client
	timeout    time.Duration
	now        func() time.Time
	accounts   lockcore.Accounts
	log        *slog.Logger
}

// New validates cfg and returns the flow. For a disabled cfg (see
// Config.Enabled) it returns a Flow that answers 404 oauth_disabled and
// ignores the other fields. accounts is where GitHub users and their tokens
// are stored; logger may be nil (no logging).
func New(cfg Config, accounts lockcore.Accounts, logger *slog.Logger) (*Flow, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.Enabled() {
		return &Flow{log: logger}, nil
	}
	v, err := cfg.check()
	if accounts == nil {
		err = errors.Join(err, errors.New("oauth: no account store"))
	}
	if err != nil {
		return nil, err
	}
	cookieName, cookiePath := cookieNameAndPath(v.public)
	f := &Flow{
		enabled: true,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:  v.base + "/login/oauth/authorize",
				TokenURL: v.base + "/login/oauth/access_token",
				// GitHub takes the credentials in the form; saying so
				// avoids oauth2's probe, which would send the code twice.
				AuthStyle: oauth2.AuthStyleInParams,
			},
			RedirectURL: v.public + CallbackPath,
			// No scope: GET /user with no scope returns the public
			// profile, which is all we need (id and login).
		},
		userURL:    v.api + "/user",
		public:     v.public,
		secure:     strings.HasPrefix(v.public, "https://"),
		cookieName: cookieName,
		cookiePath: cookiePath,
		secret:     append([]byte(nil), v.secret...),
		client:     cfg.HTTPClient,
		timeout:    DefaultGitHubTimeout,
		now:        cfg.Now,
		accounts:   accounts,
		log:        logger,
	}
	if f.client == nil {
		f.client = &http.Client{Timeout: DefaultGitHubTimeout}
	} else if f.client.Timeout > 0 {
		f.timeout = f.client.Timeout
	}
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// Check reports what New would refuse in an enabled cfg (every problem, as
// one error), without needing the account store: a server checks its
// configuration before it opens or creates its store. A disabled cfg is
// never refused.
func (c Config) Check() error {
	if !c.Enabled() {
		return nil
	}
	_, err := c.check()
	return err
}

// checked is an enabled Config's validated settings.
type checked struct {
	secret            []byte
	public, base, api string
}

// check validates an enabled cfg (all but the account store, which New
// checks) and returns its settings, or every problem joined.
func (cfg Config) check() (checked, error) {
	var problems []error
	if cfg.ClientID == "" {
		problems = append(problems, errors.New("oauth: GitHub client id is empty but a client secret is set"))
	}
	if cfg.ClientSecret == "" {
		problems = append(problems, errors.New("oauth: GitHub client secret is empty but a client id is set"))
	}
	secret := cfg.StateSecret
	switch {
	case len(secret) == 0 && len(cfg.ClientSecret) >= MinStateSecretLen:
		secret = deriveStateSecret(cfg.ClientSecret)
	case len(secret) == 0:
		problems = append(problems, fmt.Errorf("oauth: a state secret of at least %d bytes is required when the client secret is shorter than that (got %d bytes)", MinStateSecretLen, len(cfg.ClientSecret)))
	case len(secret) < MinStateSecretLen:
		problems = append(problems, fmt.Errorf("oauth: state secret must be at least %d bytes (got %d)", MinStateSecretLen, len(secret)))
	}
	public, err := parseOrigin("public URL", cfg.PublicURL, "")
	if err != nil {
		problems = append(problems, err)
	}
	base, err := parseOrigin("GitHub base URL", cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		problems = append(problems, err)
	}
	api, err := parseOrigin("GitHub API URL", cfg.APIURL, DefaultAPIURL)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return checked{}, errors.Join(problems...)
	}
	return checked{secret: secret, public: public, base: base, api: api}, nil
}

// parseOrigin checks that s (or def when s is empty and def is not) is an
// absolute http(s) URL with a host and no query, fragment or user info, and
// returns it without a trailing slash.
func parseOrigin(what, s, def string) (string, error) {
	if s == "" {
		if def == "" {
			return "", fmt.Errorf("oauth: %s is required", what)
		}
		s = def
	}
	// The messages never quote s whole: a URL with user info holds a
	// password.
	// Nor the parser's reason, which quotes a piece of it: a password with
	// an unescaped / ? or # is cut there, its start taken for the port.
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("oauth: %s does not parse (neither it nor the reason is shown: it may hold a password); it must be an absolute http or https URL without user info, query or fragment", what)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		// Without the query and fragment, which may hold a token.
		shown := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: u.Path, RawPath: u.RawPath, Opaque: u.Opaque}
		return "", fmt.Errorf("oauth: %s %q must be an absolute http or https URL without user info, query or fragment", what, shown.Redacted())
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// publicPath returns the path part of a checked origin ("" for none).
func publicPath(origin string) string {
	u, _ := url.Parse(origin)
	return u.EscapedPath()
}

// Enabled reports whether the flow serves sign-ins (false for nil).
func (f *Flow) Enabled() bool { return f != nil && f.enabled }

// Start handles GET /auth/github: it sets the signed state cookie and
// redirects (302) to GitHub's authorize page. A disabled flow answers 404
// oauth_disabled.
func (f *Flow) Start(w http.ResponseWriter, r *http.Request) {
	if !f.Enabled() {
		writeDisabled(w)
		return
	}
	state := newState()
	http.SetCookie(w, f.stateCookie(state))
	target := f.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(f.verifier(state)))
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Location", target)
	w.WriteHeader(http.StatusFound)
}

// Callback handles GET /auth/github/callback?code&state: it checks the
// state against the cookie, exchanges the code, upserts the GitHub user,
// issues a new token and shows it once. See the package comment for the
// answers.
func (f *Flow) Callback(w http.ResponseWriter, r *http.Request) {
	if !f.Enabled() {
		writeDisabled(w)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if ferr := f.checkState(r, state); ferr != nil {
		f.fail(w, r, ferr)
		return
	}
	// The state cookie has done its job; a second use would fail at
	// GitHub anyway (codes are single-use), so drop it whatever follows.
	http.SetCookie(w, f.clearCookie())

	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			f.fail(w, r, &flowError{status: http.StatusBadGateway, code: codeFailed,
				msg: "GitHub sign-in was cancelled: access to your GitHub account was not granted.",
				log: "user denied access on GitHub"})
			return
		}
		f.fail(w, r, &flowError{status: http.StatusBadGateway, code: codeFailed, msg: msgFailed,
			log: "GitHub redirected with an error: " + clip(e)})
		return
	}
	code := q.Get("code")
	if code == "" {
		f.fail(w, r, &flowError{status: http.StatusBadRequest, code: codeBadState,
			msg: "The sign-in callback has no code parameter; start again at " + f.public + StartPath + ".",
			log: "callback without code"})
		return
	}

	user, ferr := f.githubUser(r.Context(), code, state)
	if ferr != nil {
		f.fail(w, r, ferr)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	acct, err := f.accounts.UpsertGitHubAccount(ctx, user.ID, user.Login)
	if err != nil {
		f.fail(w, r, storeFailure("upsert GitHub account", err))
		return
	}
	token, hash := lockcore.NewToken()
	if err := f.accounts.AddToken(ctx, acct.ID, hash); err != nil {
		f.fail(w, r, storeFailure("add token", err))
		return
	}
	f.log.LogAttrs(r.Context(), slog.LevelInfo, "github sign-in",
		slog.String("request_id", w.Header().Get("X-Request-Id")),
		slog.String("account_id", acct.ID),
		slog.Int64("github_id", user.ID),
		slog.String("login", acct.Login))
	f.writeToken(w, r, token, acct)
}

// storeFailure turns a store error into the contract's answer: 503 when
// the store is unreachable or the request ran out of time, else 500.
func storeFailure(op string, err error) *flowError {
	if errors.Is(err, lockcore.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &flowError{status: http.StatusServiceUnavailable, code: "store_unavailable",
			msg: "The store is unavailable; try signing in again in a moment.",
			log: op + ": " + err.Error(), retryAfter: true}
	}
	return &flowError{status: http.StatusInternalServerError, code: "internal",
		msg: "Internal error.", log: op + ": " + err.Error()}
}

// clip shortens a value echoed from a query string before it is logged.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
