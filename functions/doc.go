// Package functions is OctoStore's HTTP layer: the stateless net/http
// handlers of every endpoint of the API contract (/work/shared/API.md), the
// middleware around them (request id, panic recovery, access log, bearer
// authentication), the strict JSON request codec, and the one table that maps
// errors to HTTP statuses and codes.
//
// New returns an http.Handler that runs unchanged on a plain net/http server,
// behind an AWS Lambda adapter, or under httptest. Between requests it keeps
// only a bounded map from token hash to account id (a hint the store checks
// again inside every lock write, so a rotation or revocation on another
// instance takes effect at once) and the counters that throttle outage log
// lines; everything else is in the store, so any number of instances can
// serve one store. It never imports a concrete store.
//
// Promises every response keeps: an X-Request-Id header (an incoming
// well-formed one echoed, else a fresh one), Cache-Control (no-store on the
// API's answers; /openapi.json and /docs may be cached for 5 minutes, the
// docs' assets for an hour) and X-Content-Type-Options: nosniff; JSON
// responses carry Content-Type application/json; charset=utf-8; error
// bodies are
// {"error","code","request_id"}. No input, however malformed, produces a 500
// or a panic; a 500 means a bug and its detail goes only to the log. Bearer
// tokens and the Authorization header are never logged.
package functions
