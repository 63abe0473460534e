package functions

import (
	"errors"
	"net/http"

	"github.com/octostore/octostore/lockcore"
)

// tokenRoutes are the token endpoints that need a bearer token.
func (s *server) tokenRoutes() []route {
	return []route{
		{"POST /auth/token/rotate", authFirst, s.rotateToken},
	}
}

// tokenBody is the answer that shows a new token, once.
type tokenBody struct {
	Token     string `json:"token"`
	AccountID string `json:"account_id"`
	Login     string `json:"login"`
}

// rotateToken serves POST /auth/token/rotate: the calling token is replaced
// by a new one, shown once. The body must be empty or {}. A token rotated
// concurrently by another request is answered 401.
func (s *server) rotateToken(ex *exchange, r *http.Request) error {
	var body requestBody
	if err := s.readBody(ex, r, 0, &body); err != nil {
		return err
	}
	token, hash := lockcore.NewToken()
	ctx, cancel := s.opContext(r)
	defer cancel()
	acct, err := s.store.RotateToken(ctx, ex.tokenHash, hash)
	if err != nil {
		if errors.Is(err, lockcore.ErrNotFound) {
			return newError(errUnauthorized, "unknown or revoked bearer token")
		}
		return err
	}
	s.tokens.forget(ex.tokenHash)
	writeJSON(ex, http.StatusOK, &tokenBody{Token: token, AccountID: acct.ID, Login: acct.Login})
	return nil
}
