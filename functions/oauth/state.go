package oauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StateCookie is the name of the cookie carrying the signed state when the
// public URL is http. On https it carries the "__Host-" prefix, which
// browsers enforce (Secure, Path=/, no Domain attribute), so that neither a
// sibling subdomain nor a network attacker can plant one (a planted cookie
// of the attacker's own sign-in would sign the victim in to the attacker's
// account). "__Secure-" would not do: a sibling subdomain may set a
// "__Secure-" cookie for the parent domain. Under a path prefix the name
// also carries a hash of the prefix (see cookieNameAndPath).
const StateCookie = "octostore_oauth_state"

// cookieNameAndPath returns the state cookie's name and path for the
// checked public origin. On http the cookie is scoped to the sign-in
// routes. On https it is always "__Host-" with Path=/ (the prefix demands
// it); under a path prefix its name ends with a hash of the prefix, so that
// deployments sharing a host under different prefixes (API Gateway stages)
// do not overwrite or trip over each other's sign-ins.
func cookieNameAndPath(public string) (name, path string) {
	prefix := publicPath(public)
	switch {
	case !strings.HasPrefix(public, "https://"):
		return StateCookie, prefix + StartPath
	case prefix == "":
		return "__Host-" + StateCookie, "/"
	}
	sum := sha256.Sum256([]byte(prefix))
	return "__Host-" + StateCookie + "_" + hex.EncodeToString(sum[:6]), "/"
}

// MAC domains, so a MAC made for one purpose is never valid for another.
const (
	macCookie   = "octostore-oauth-state-cookie\x00"
	macVerifier = "octostore-oauth-pkce-verifier\x00"
	macDerive   = "octostore-oauth-state-key\x00"
)

// deriveStateSecret derives the state key from the GitHub client secret,
// so that it is never used directly for anything but GitHub.
func deriveStateSecret(clientSecret string) []byte {
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte(macDerive))
	return m.Sum(nil)
}

// newState returns 32 random bytes in unpadded base64url.
func newState() string {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never returns an error.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// mac returns base64url(HMAC-SHA256(secret, domain || msg)).
func (f *Flow) mac(domain, msg string) string {
	m := hmac.New(sha256.New, f.secret)
	m.Write([]byte(domain))
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifier derives the PKCE code verifier of a state (43 base64url
// characters, as RFC 7636 asks). Only holders of the secret can compute
// it, so a code stolen from the redirect cannot be exchanged elsewhere.
func (f *Flow) verifier(state string) string { return f.mac(macVerifier, state) }

// stateCookie returns the cookie "state.expiry.mac", expiry in Unix
// seconds by the flow's clock.
func (f *Flow) stateCookie(state string) *http.Cookie {
	exp := strconv.FormatInt(f.now().Add(StateTTL).Unix(), 10)
	payload := state + "." + exp
	return &http.Cookie{
		Name:     f.cookieName,
		Value:    payload + "." + f.mac(macCookie, payload),
		Path:     f.cookiePath,
		MaxAge:   int(StateTTL / time.Second),
		HttpOnly: true,
		Secure:   f.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// clearCookie returns a cookie that deletes the state cookie.
func (f *Flow) clearCookie() *http.Cookie {
	return &http.Cookie{
		Name:     f.cookieName,
		Value:    "",
		Path:     f.cookiePath,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   f.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// maxStateCookies is how many state cookies of one request checkState
// examines, in the order the request sends them.
const maxStateCookies = 4

// checkState accepts the callback when one of the request's state cookies
// is authentic (constant-time MAC check), unexpired, and carries state. It
// returns the 400 invalid_oauth_state answer otherwise, naming the first
// reason found.
func (f *Flow) checkState(r *http.Request, state string) *flowError {
	cookies := r.CookiesNamed(f.cookieName)
	if len(cookies) == 0 {
		return badState("The sign-in state cookie is missing (cookies must be enabled, and the sign-in must start and end in the same browser); start again at "+f.public+StartPath+".",
			"state cookie missing")
	}
	if state == "" {
		return badState("The sign-in callback has no state parameter; start again at "+f.public+StartPath+".",
			"callback without state")
	}
	// A browser sends one such cookie per path or domain that set it, a
	// handful at most; a request that carries more (up to the 32 KiB
	// header limit, ~1000 of them) would otherwise buy an HMAC each.
	if len(cookies) > maxStateCookies {
		cookies = cookies[:maxStateCookies]
	}
	var worst *flowError
	for _, c := range cookies {
		ferr := f.checkCookie(c.Value, state)
		if ferr == nil {
			return nil
		}
		if worst == nil {
			worst = ferr
		}
	}
	return worst
}

// checkCookie checks one cookie value against the query's state.
func (f *Flow) checkCookie(value, state string) *flowError {
	restart := "; start again at " + f.public + StartPath + "."
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return badState("The sign-in state cookie is malformed"+restart, "state cookie malformed")
	}
	payload := parts[0] + "." + parts[1]
	if !hmac.Equal([]byte(f.mac(macCookie, payload)), []byte(parts[2])) {
		return badState("The sign-in state cookie is not authentic"+restart, "state cookie MAC mismatch")
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return badState("The sign-in state cookie is malformed"+restart, "state cookie expiry malformed")
	}
	if !f.now().Before(time.Unix(exp, 0)) {
		return badState("The sign-in took longer than 10 minutes and expired"+restart, "state cookie expired")
	}
	if subtle.ConstantTimeCompare([]byte(parts[0]), []byte(state)) != 1 {
		return badState("The state parameter does not match this browser's sign-in"+restart, "state mismatch")
	}
	return nil
}

func badState(msg, log string) *flowError {
	return &flowError{status: http.StatusBadRequest, code: codeBadState, msg: msg, log: log}
}
