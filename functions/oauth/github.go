package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"

	"golang.org/x/oauth2"

	"github.com/octostore/octostore/lockcore"
)

// maxUserBody bounds the GET /user answer that is read.
const maxUserBody = 1 << 20

// githubUser is the part of GitHub's GET /user answer OctoStore uses.
type githubUser struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
}

// githubUser exchanges code for an access token and asks GitHub who it
// belongs to. Every failure is a 502 oauth_failed whose log detail names
// the step and never contains the code, the access token or a response
// body (which could hold either).
func (f *Flow) githubUser(ctx context.Context, code, state string) (githubUser, *flowError) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, f.client)

	xctx, cancel := context.WithTimeout(ctx, f.timeout)
	tok, err := f.oauth.Exchange(xctx, code, oauth2.VerifierOption(f.verifier(state)))
	cancel()
	if err != nil {
		return githubUser{}, failed("token exchange: " + describeExchangeError(err))
	}
	if !tokenTypeOK(tok.TokenType) {
		return githubUser{}, failed(fmt.Sprintf("token exchange: unexpected token type %q", clip(tok.TokenType)))
	}

	uctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(uctx, http.MethodGet, f.userURL, nil)
	if err != nil {
		return githubUser{}, failed("GET /user: " + err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "octostore")
	resp, err := f.client.Do(req)
	if err != nil {
		return githubUser{}, failed("GET /user: " + err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return githubUser{}, failed(fmt.Sprintf("GET /user: status %d", resp.StatusCode))
	}
	var u githubUser
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxUserBody))
	if err := dec.Decode(&u); err != nil {
		return githubUser{}, failed("GET /user: cannot decode the answer: " + jsonProblem(err))
	}
	if u.ID <= 0 {
		return githubUser{}, failed(fmt.Sprintf("GET /user: user id %d is not positive", u.ID))
	}
	if err := lockcore.ValidateLogin(u.Login); err != nil {
		return githubUser{}, failed("GET /user: " + err.Error())
	}
	return u, nil
}

// tokenTypeOK accepts the token types GitHub answers (it says "bearer").
func tokenTypeOK(t string) bool {
	switch t {
	case "", "bearer", "Bearer", "BEARER":
		return true
	}
	return false
}

// describeExchangeError says what went wrong with the token exchange
// without its response body or any value quoted from it.
func describeExchangeError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		s := "GitHub refused"
		if re.Response != nil {
			s += fmt.Sprintf(" with status %d", re.Response.StatusCode)
		}
		if re.ErrorCode != "" {
			s += ", error " + clip(re.ErrorCode)
		}
		return s
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return err.Error() // the transport's: it names the token URL, not what was sent
	}
	// The library's own message, such as a parse error of the answer,
	// may quote a value of it, which could be the access token.
	return quoted.ReplaceAllString(err.Error(), `"…"`)
}

// quoted matches a double-quoted string, as %q and encoding/json write.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// jsonProblem names a JSON decoding failure without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type (%s)", typ.Field, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated or empty"
	}
	return "invalid JSON"
}

func failed(log string) *flowError {
	return &flowError{status: http.StatusBadGateway, code: codeFailed, msg: msgFailed, log: log}
}
