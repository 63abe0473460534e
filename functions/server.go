package functions

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/octostore/octostore/functions/apidocs"
	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/lockcore"
)

// Deps are what the handlers need; New fills zero values with defaults.
type Deps struct {
	// Store keeps accounts, tokens and locks. Required.
	Store lockcore.Store
	// StoreName is "sqlite" or "redis", shown by /health; "" means "unknown".
	StoreName string
	// Limits bound the inputs; the zero value means lockcore.DefaultLimits.
	Limits lockcore.Limits
	// Logger receives the access log and error details; nil discards them.
	Logger *slog.Logger
	// Version is shown by /health; "" means "dev".
	Version string
	// OpTimeout bounds each store operation, derived from the request's
	// context; zero means 3 s.
	OpTimeout time.Duration
	// OAuth serves GET /auth/github and its callback; nil (no GitHub app
	// configured) answers both with 404 oauth_disabled.
	OAuth *oauth.Flow
}

// DefaultOpTimeout is the store-operation timeout used when Deps.OpTimeout
// is zero.
const DefaultOpTimeout = 3 * time.Second

// healthTimeout bounds the store ping of GET /health.
const healthTimeout = time.Second

// server is the handler New returns. Its fields are not changed after New;
// the token map and the log throttles they point to change, and are safe
// for concurrent use, so the server is too.
type server struct {
	store     lockcore.Store
	storeName string
	limits    lockcore.Limits
	log       *slog.Logger
	version   string
	opTimeout time.Duration

	// tokenIDs is the store's optional one-step token → account id
	// lookup (nil when it has none): authentication needs only the id.
	tokenIDs accountIDByToken
	// tokenLocks is the store's optional TokenLocks (nil when it has
	// none): with it, every lock write checks its token in the store step,
	// and takes the account from tokens instead of a lookup first when
	// the map knows it.
	tokenLocks lockcore.TokenLocks
	tokens     *tokenMap

	// unavailableLog and healthLog throttle the lines that give the
	// store's error behind a 503 answer and a failed health check.
	unavailableLog, healthLog *logThrottle

	mux     *http.ServeMux
	handler http.Handler
}

// accountIDByToken is an optional capability of a Store: AccountByToken
// without the account record, cheaper where the record is a second read
// (Redis: one round trip instead of two). It must answer exactly as
// AccountByToken would (ErrNotFound for an unknown or revoked token).
type accountIDByToken interface {
	AccountIDByToken(ctx context.Context, hash lockcore.TokenHash) (string, error)
}

// New returns the HTTP handler of the whole API. It panics if d.Store is nil
// or if d.Limits is non-zero and fails Limits.Validate: both are programming
// errors of the caller. The handler is safe for concurrent use.
func New(d Deps) http.Handler {
	if d.Store == nil {
		panic("functions.New: Deps.Store is nil")
	}
	s := &server{
		store:     d.Store,
		storeName: d.StoreName,
		limits:    d.Limits,
		log:       d.Logger,
		version:   d.Version,
		opTimeout: d.OpTimeout,
		mux:       http.NewServeMux(),

		unavailableLog: newLogThrottle(outageLogInterval),
		healthLog:      newLogThrottle(outageLogInterval),
	}
	s.tokenIDs, _ = d.Store.(accountIDByToken)
	s.tokenLocks, _ = d.Store.(lockcore.TokenLocks)
	s.tokens = newTokenMap(defaultTokenMapSize)
	if s.limits == (lockcore.Limits{}) {
		s.limits = lockcore.DefaultLimits
	}
	if err := s.limits.Validate(); err != nil {
		panic("functions.New: " + err.Error())
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.storeName == "" {
		s.storeName = "unknown"
	}
	if s.opTimeout <= 0 {
		s.opTimeout = DefaultOpTimeout
	}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, s.endpoint(rt))
	}
	// Sign-in and the docs answer their own bodies (HTML pages, assets)
	// but still run behind the same middleware and dispatch.
	s.mux.HandleFunc("GET "+oauth.StartPath, d.OAuth.Start)
	s.mux.HandleFunc("GET "+oauth.CallbackPath, d.OAuth.Callback)
	for _, rt := range apidocs.RoutesFor(s.version, s.limits) {
		s.mux.Handle(rt.Pattern, rt.Handler)
	}
	// Outermost first: request id, recover, access log, then routing (and
	// per-route authentication inside endpoint).
	s.handler = s.withRequestID(s.withRecover(s.withAccessLog(http.HandlerFunc(s.dispatch))))
	return s
}

// ServeHTTP serves one request.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// handlerFunc is the shape of every endpoint: it writes its answer, or
// returns an error for writeError to map through errorTable. ex.account is
// set when the route requires authentication.
type handlerFunc func(ex *exchange, r *http.Request) error

// route is one endpoint: a ServeMux pattern, how it checks the bearer
// token, and its handler.
type route struct {
	pattern string
	auth    authMode
	handle  handlerFunc
}

// authMode is how an endpoint checks the bearer token.
type authMode uint8

const (
	// authNone: no token needed.
	authNone authMode = iota
	// authFirst: the token is looked up in the store before the handler
	// runs (and before the body is read).
	authFirst
	// authInStep: for a lock write (acquire, renew, release). When the
	// store has lockcore.TokenLocks, the write checks the token in the
	// same atomic step as the write itself, so a token rotated away or
	// revoked after the headers were checked (while the body was still
	// arriving, or the write queued) changes nothing. If the server's
	// token map knows the token's account, the handler runs at once (one
	// store round trip instead of two); if it then fails before its step
	// proved the token, the token is looked up after all, so a bad token
	// still gets its 401 before any other error. Otherwise, and on a store
	// without TokenLocks, the token is looked up first as for authFirst.
	authInStep
)

// routes lists every endpoint of this package. A feature in its own file
// adds its routes here with one line. Handlers of other packages (the
// GitHub sign-in, the docs) are not routes: New registers them on the mux
// directly, where they still run under the same middleware and can read
// the request id from the X-Request-Id header already set on the answer.
func (s *server) routes() []route {
	return concat(
		s.lockRoutes(),
		s.tokenRoutes(),
		s.healthRoutes(),
	)
}

func concat(lists ...[]route) []route {
	var all []route
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

// endpoint adapts a route to http.Handler: authentication first (before any
// body is read; for authInStep possibly from the token map, see there),
// then the handler, then error mapping.
func (s *server) endpoint(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeOf(w, r)
		if rt.auth != authNone {
			if err := s.authenticate(ex, r, rt.auth == authInStep); err != nil {
				s.writeError(ex, r, err)
				return
			}
		}
		err := rt.handle(ex, r)
		if err != nil && ex.unproved {
			// The handler failed before its store step proved the token:
			// a bad token's 401 comes first (see proveToken).
			if aerr := s.proveToken(ex, r); aerr != nil {
				err = aerr
			}
		}
		if err != nil {
			s.writeError(ex, r, err)
		}
	})
}

// dispatch routes r through the mux, answering unknown routes with 404
// not_found and known paths with the wrong method with 405
// method_not_allowed and an Allow header, both as JSON. Unclean paths
// ("/locks/a/../b", "//locks") are not redirected: they are 404.
func (s *server) dispatch(w http.ResponseWriter, r *http.Request) {
	ex := exchangeOf(w, r)
	if p := r.URL.EscapedPath(); p == "" || p[0] != '/' || !isCleanPath(p) {
		m, p := safePath(r)
		s.writeError(ex, r, newError(errNotFound, "no such route: "+m+" "+p))
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		if eh, ok := s.escapedSlashRoute(r); ok {
			if r.Pattern != "" {
				eh.ServeHTTP(ex, r)
				return
			}
			h = eh // the mux's answer for the route the path names: 404 or 405
		}
		probe := probeWriter{header: http.Header{}}
		h.ServeHTTP(&probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			ex.Header().Set("Allow", probe.header.Get("Allow"))
			m, p := safePath(r)
			s.writeError(ex, r, newError(errMethodNotAllowed, "method "+m+" is not allowed on "+p+"; allowed: "+probe.header.Get("Allow")))
			return
		}
		m, p := safePath(r)
		s.writeError(ex, r, newError(errNotFound, "no such route: "+m+" "+p))
		return
	}
	s.mux.ServeHTTP(ex, r)
}

// escapedSlashRoute routes a path with a segment that is exactly an escaped
// slash ("/locks/%2F"), which ServeMux answers 404 although "/locks/a%2Fb"
// and "/locks/%2F%2F" reach their route: the segment is routed as a plain
// placeholder, and the wildcard it fills is set to "/" on r (an invalid
// lock name, so the answer is 400 invalid_name like any other). For such a
// path it returns the mux's handler of the placeholder path and true, and
// sets r.Pattern when a route matches; a path without such a segment gives
// false.
func (s *server) escapedSlashRoute(r *http.Request) (http.Handler, bool) {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	var slashes []int
	for i, seg := range segs {
		if strings.EqualFold(seg, "%2F") {
			segs[i] = "_"
			slashes = append(slashes, i)
		}
	}
	if len(slashes) == 0 {
		return nil, false
	}
	probe := r.Clone(r.Context())
	probe.URL.Path = strings.Join(segs, "/")
	probe.URL.RawPath = ""
	h, pattern := s.mux.Handler(probe)
	if pattern == "" {
		return h, true
	}
	_, path, _ := strings.Cut(pattern, " ")
	tmpl := strings.Split(path, "/")
	for _, i := range slashes {
		if i < len(tmpl) && strings.HasPrefix(tmpl[i], "{") && strings.HasSuffix(tmpl[i], "}") {
			r.SetPathValue(strings.Trim(tmpl[i], "{}."), "/")
		}
	}
	r.Pattern = pattern
	return h, true
}

// isCleanPath reports whether p has no empty, "." or ".." segments (a
// trailing slash is allowed), i.e. whether ServeMux would route it without
// a redirect.
func isCleanPath(p string) bool {
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return !strings.Contains(p, "//")
}

// safePath returns the request's method and path for an error sentence:
// a token sent in either by mistake hidden as in the access log (an error
// body ends up in client and CI logs), and the path cut short so a huge
// one is not echoed whole.
func safePath(r *http.Request) (method, path string) {
	return cutText(lockcore.HideTokens(r.Method), 32), cutText(lockcore.HideTokens(r.URL.EscapedPath()), 200)
}

// cutText cuts s, an ASCII request line element, to n bytes and "...".
func cutText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// probeWriter captures what ServeMux's own 404/405 handlers would write.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
