package functions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// exchange is one request in flight: the ResponseWriter every layer below
// the request-id middleware writes to. It records what the access log needs
// (status, bytes, error code, account) and carries the request id and the
// authenticated account to the handlers.
type exchange struct {
	http.ResponseWriter
	requestID   string
	status      int
	bytes       int64
	wroteHeader bool
	code        string // error code of an error answer, for the log

	authed bool
	// unproved: the account comes from the token map and the token has
	// not been checked by the store yet (authInStep).
	unproved bool
	// account is the caller's account; when the store offers
	// AccountIDByToken or the account comes from the token map only its ID
	// is set (all a handler needs).
	account   lockcore.Account
	tokenHash lockcore.TokenHash
}

// WriteHeader records the status and passes it on once.
func (ex *exchange) WriteHeader(code int) {
	if ex.wroteHeader {
		return
	}
	ex.wroteHeader = true
	ex.status = code
	ex.ResponseWriter.WriteHeader(code)
}

// Write records the byte count, sending a 200 header first if none was.
func (ex *exchange) Write(b []byte) (int, error) {
	if !ex.wroteHeader {
		ex.WriteHeader(http.StatusOK)
	}
	n, err := ex.ResponseWriter.Write(b)
	ex.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (ex *exchange) Unwrap() http.ResponseWriter { return ex.ResponseWriter }

// exchangeOf returns the exchange behind w. Every handler of this package
// runs below withRequestID, so w is one; the fallback keeps a handler usable
// on its own.
func exchangeOf(w http.ResponseWriter, r *http.Request) *exchange {
	if ex, ok := w.(*exchange); ok {
		return ex
	}
	return newExchange(w, r)
}

func newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	ex := &exchange{ResponseWriter: w, requestID: requestIDOf(r)}
	h := w.Header()
	h["X-Request-Id"] = []string{ex.requestID}
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	return ex
}

// Header values every answer carries, shared read-only by all of them (one
// allocation fewer per header and request; the keys are already canonical).
// net/http only reads them, and Header.Add or Set on one replaces or grows
// a copy, never the shared array.
var (
	noStore = []string{"no-store"}
	nosniff = []string{"nosniff"}
)

// requestIDOf returns the incoming X-Request-Id if it matches
// ^[A-Za-z0-9._:-]{1,128}$ and holds nothing shaped like a bearer token
// (the id is logged, a token never is), else 16 fresh random bytes in hex.
func requestIDOf(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); validRequestID(id) && lockcore.HideTokens(id) == id {
		return id
	}
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails.
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// withRequestID wraps the ResponseWriter in an exchange carrying the request
// id and sets the headers every answer has.
func (s *server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(newExchange(w, r), r)
	})
}

// withRecover turns a panic into a 500 internal answer (when nothing was
// written yet) and logs it with its stack and the request id; the client
// learns nothing of it. http.ErrAbortHandler is passed on.
func (s *server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeOf(w, r)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.LogAttrs(context.Background(), slog.LevelError, "panic",
				slog.String("request_id", ex.requestID),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())))
			if !ex.wroteHeader {
				s.respondError(ex, internalRow, internalRow.msg)
			}
		}()
		next.ServeHTTP(ex, r)
	})
}

// maxLoggedPath is the longest path the access log writes whole; a longer
// one is cut and ends in "...". No route's path is nearly that long.
const maxLoggedPath = 512

// withAccessLog logs one line per request: request id, method, path (never
// the query string; a token sent in it by mistake is hidden), status, bytes,
// duration, error code and account id when known. It never logs headers,
// bodies or tokens. A handler that panicked before writing has its line
// say 500, the answer withRecover gives; one that returned without writing
// (a HEAD of a docs file) has it say 200, which net/http then sends.
func (s *server) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeOf(w, r)
		start := time.Now()
		returned := false
		defer func() {
			if !s.log.Enabled(r.Context(), slog.LevelInfo) {
				return
			}
			status := ex.status
			if !ex.wroteHeader {
				status = http.StatusOK
				if !returned {
					status = http.StatusInternalServerError
				}
			}
			attrs := make([]slog.Attr, 0, 9)
			attrs = append(attrs,
				slog.String("request_id", ex.requestID),
				// Cut as in error bodies: a client may send up to the
				// header limit (32 KiB) of path or method per request.
				slog.String("method", cutText(lockcore.HideTokens(r.Method), 32)),
				slog.String("path", cutText(lockcore.HideTokens(r.URL.EscapedPath()), maxLoggedPath)),
				slog.Int("status", status),
				slog.Int64("bytes", ex.bytes),
				slog.Duration("duration", time.Since(start)),
			)
			if ex.code != "" {
				attrs = append(attrs, slog.String("code", ex.code))
			}
			if ex.authed {
				attrs = append(attrs, slog.String("account_id", ex.account.ID))
			}
			s.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
		}()
		next.ServeHTTP(ex, r)
		returned = true
	})
}

// authenticate checks the bearer token of r and records its account in ex.
// Missing, malformed, unknown and revoked tokens are errUnauthorized; any
// other store failure is ErrUnavailable (503: the token could not be
// checked).
//
// With inStep (a lock write) and a store with lockcore.TokenLocks, a token
// whose account is in the token map is not looked up: ex is marked
// unproved, and the handler's store step (or proveToken, if the handler
// fails first) checks it.
func (s *server) authenticate(ex *exchange, r *http.Request, inStep bool) error {
	hash, err := bearerHash(r)
	if err != nil {
		return err
	}
	// A client that sent "Expect: 100-continue" waits for the 100 before
	// it sends its body: the token is looked up first, so that a bad one
	// is answered 401 before the client is invited to upload the body.
	if inStep && s.tokenLocks != nil && !expectsContinue(r) {
		if id, ok := s.tokens.account(hash); ok {
			ex.authed, ex.unproved, ex.account.ID, ex.tokenHash = true, true, id, hash
			return nil
		}
	}
	acct, err := s.lookupToken(r, hash)
	if err != nil {
		return err
	}
	ex.authed, ex.account, ex.tokenHash = true, acct, hash
	return nil
}

// expectsContinue reports whether r asks for a 100 Continue before its body:
// an Expect header whose comma-separated list names 100-continue, as
// net/http reads it (it sends the 100 for "Expect: 100-continue, x" too).
func expectsContinue(r *http.Request) bool {
	for _, v := range r.Header.Values("Expect") {
		for e := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(e), "100-continue") {
				return true
			}
		}
	}
	return false
}

// bearerHash returns the hash of the well-formed bearer token of r, or
// errUnauthorized.
func bearerHash(r *http.Request) (lockcore.TokenHash, error) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return lockcore.TokenHash{}, newError(errUnauthorized, `missing bearer token: send "Authorization: Bearer <token>"`)
	case len(vals) > 1:
		return lockcore.TokenHash{}, newError(errUnauthorized, "more than one Authorization header")
	}
	scheme, tok, ok := strings.Cut(strings.Trim(vals[0], " "), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return lockcore.TokenHash{}, newError(errUnauthorized, `malformed Authorization header: want "Bearer <token>"`)
	}
	hash, err := lockcore.ParseToken(strings.TrimLeft(tok, " "))
	if err != nil {
		return lockcore.TokenHash{}, newError(errUnauthorized, "malformed bearer token: "+err.Error())
	}
	return hash, nil
}

// errUnknownToken is the answer to a token the store does not know.
func errUnknownToken() error { return newError(errUnauthorized, "unknown or revoked bearer token") }

// lookupToken asks the store whose token hash is, and remembers the answer
// in the token map.
func (s *server) lookupToken(r *http.Request, hash lockcore.TokenHash) (lockcore.Account, error) {
	ctx, cancel := s.readContext(r) // a read: not ended by a half-close
	defer cancel()
	var (
		acct lockcore.Account
		err  error
	)
	if s.tokenIDs != nil {
		acct.ID, err = s.tokenIDs.AccountIDByToken(ctx, hash)
	} else {
		acct, err = s.store.AccountByToken(ctx, hash)
	}
	if err != nil {
		if errors.Is(err, lockcore.ErrNotFound) {
			s.tokens.forget(hash)
			return lockcore.Account{}, errUnknownToken()
		}
		// Whatever else the store says, the token could not be checked.
		return lockcore.Account{}, &handlerError{Kind: lockcore.ErrUnavailable, Detail: err}
	}
	s.tokens.remember(hash, acct.ID)
	return acct, nil
}

// proveToken looks up the token of an unproved exchange whose handler
// failed before its store step proved it. It returns errUnauthorized (and
// marks ex unauthenticated) for a bad token, which then wins over the
// handler's error; nil otherwise, including when the store cannot tell
// (the handler's own error then stands: it is about the request, which was
// wrong whatever the token).
func (s *server) proveToken(ex *exchange, r *http.Request) error {
	ex.unproved = false
	acct, err := s.lookupToken(r, ex.tokenHash)
	if err != nil {
		var he *handlerError
		if errors.As(err, &he) && errors.Is(he.Kind, lockcore.ErrUnavailable) {
			return nil
		}
		ex.authed = false
		return err
	}
	ex.account = acct
	return nil
}

// stepProved interprets the error of a TokenLocks step (of an unproved
// exchange, or of one whose token was looked up before the body was read
// and may have been revoked since): a refused token (ErrNotFound) becomes
// errUnauthorized and is forgotten; an answer about the lock (nil,
// ErrLeaseNotCurrent, ErrLockLimitExceeded) proves the token; a store that
// did not answer (ErrUnavailable) leaves it unchecked and the answer 503,
// without asking the store again about the token, which would only wait as
// long again; anything else leaves an unproved exchange unproved for
// proveToken.
func (s *server) stepProved(ex *exchange, err error) error {
	switch {
	case err == nil, errors.Is(err, lockcore.ErrLeaseNotCurrent), errors.Is(err, lockcore.ErrLockLimitExceeded),
		errors.Is(err, lockcore.ErrUnavailable):
		ex.unproved = false
		return err
	case errors.Is(err, lockcore.ErrNotFound):
		s.tokens.forget(ex.tokenHash)
		ex.unproved, ex.authed = false, false
		return errUnknownToken()
	}
	return err
}
