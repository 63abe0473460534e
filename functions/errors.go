package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/octostore/octostore/lockcore"
)

// Error kinds of the HTTP layer itself, next to lockcore's sentinels. A
// handler returns them wrapped in a *handlerError.
var (
	errInvalidJSON      = errors.New("invalid json")
	errUnauthorized     = errors.New("unauthorized")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errBodyTooLarge     = errors.New("body too large")
)

// handlerError is an error a handler returns: Msg is the sentence for the
// client, Detail what only the log sees, Kind the row of errorTable.
type handlerError struct {
	Kind   error
	Msg    string
	Detail error
}

func (e *handlerError) Error() string {
	switch {
	case e.Detail == nil:
		return e.Msg
	case e.Msg == "":
		return e.Detail.Error()
	}
	return e.Msg + ": " + e.Detail.Error()
}

func (e *handlerError) Unwrap() []error {
	if e.Detail != nil {
		return []error{e.Kind, e.Detail}
	}
	return []error{e.Kind}
}

func newError(kind error, msg string) error { return &handlerError{Kind: kind, Msg: msg} }

// cutShortRow answers a store write that ended because its request's
// context did (the client closed its side of the connection): 503 with
// Retry-After, like a timeout, whose outcome is just as unknown. A client
// that only half-closed still reads it and retries; one that is gone does
// not read it.
var cutShortRow = errorRow{nil, http.StatusServiceUnavailable, "store_unavailable", "the request ended before the lock store answered (the client closed its side of the connection); it may or may not have been applied: retry it"}

// errorRow is one row of errorTable.
type errorRow struct {
	kind   error
	status int
	code   string
	msg    string // default sentence when the error carries none
}

// errorTable is the one place that maps errors to statuses and codes. Rows
// are tried in order with errors.Is; an error matching none is a bug: 500
// internal.
var errorTable = []errorRow{
	{lockcore.ErrInvalidName, http.StatusBadRequest, "invalid_name", "invalid lock name"},
	{lockcore.ErrInvalidTTL, http.StatusBadRequest, "invalid_ttl", "invalid ttl_seconds"},
	{lockcore.ErrInvalidMetadata, http.StatusBadRequest, "invalid_metadata", "invalid metadata"},
	{lockcore.ErrInvalidLeaseID, http.StatusBadRequest, "invalid_lease_id", "invalid lease_id"},
	{errInvalidJSON, http.StatusBadRequest, "invalid_json", "request body is not valid JSON"},
	{errUnauthorized, http.StatusUnauthorized, "unauthorized", "missing, malformed or unknown bearer token"},
	{lockcore.ErrLockLimitExceeded, http.StatusForbidden, "lock_limit_exceeded", "the account already holds its maximum number of unexpired locks"},
	{errNotFound, http.StatusNotFound, "not_found", "no such route"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route"},
	{lockcore.ErrLeaseNotCurrent, http.StatusConflict, "lease_not_current", "the lease is not the current holder of the lock: it expired, was released, was replaced, or never existed"},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)},
	{lockcore.ErrUnavailable, http.StatusServiceUnavailable, "store_unavailable", "the lock store is unavailable; retry shortly"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "store_unavailable", "the lock store is unavailable; retry shortly"},
}

var internalRow = errorRow{nil, http.StatusInternalServerError, "internal", "internal error"}

// classify finds err's row and the sentence to show the client.
func classify(err error) (errorRow, string) {
	for _, row := range errorTable {
		if errors.Is(err, row.kind) {
			msg := row.msg
			var he *handlerError
			var ie *lockcore.InputError
			switch {
			case errors.As(err, &he) && he.Msg != "":
				msg = he.Msg
			case errors.As(err, &ie) && ie.Msg != "":
				msg = ie.Msg
			}
			return row, msg
		}
	}
	return internalRow, internalRow.msg
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error     string `json:"error"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
}

// writeError answers r with err, mapped through errorTable, and logs what
// the client must not see: every internal error, and the store's error
// behind a 503 at most once per outageLogInterval for each cause.
func (s *server) writeError(ex *exchange, r *http.Request, err error) {
	if ex.wroteHeader {
		s.log.LogAttrs(r.Context(), slog.LevelError, "error after the answer was started",
			slog.String("request_id", ex.requestID), slog.String("error", err.Error()))
		return
	}
	row, msg := classify(err)
	cutShort := row.status >= 500 && errors.Is(r.Context().Err(), context.Canceled)
	if cutShort {
		// The client closed its side; whatever the store said then is
		// not a 500, and its outcome is unknown (see cutShortRow).
		row, msg = cutShortRow, cutShortRow.msg
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request cut short by the client",
			slog.String("request_id", ex.requestID), slog.String("error", err.Error()))
	}
	switch {
	case cutShort: // logged above
	case row.status == http.StatusInternalServerError:
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("request_id", ex.requestID), slog.String("error", err.Error()))
	case row.status == http.StatusServiceUnavailable:
		if ok, skipped := s.unavailableLog.allow(err.Error()); ok {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "store unavailable",
				outageAttrs(ex.requestID, err, skipped)...)
		}
	}
	s.respondError(ex, row, msg)
}

// outageAttrs are the attributes of a throttled line about the store's
// error: the request's id, the error, and how many such lines were not
// written since the last one (logThrottle), when any were not.
func outageAttrs(requestID string, err error, skipped int64) []slog.Attr {
	attrs := []slog.Attr{slog.String("request_id", requestID), slog.String("error", err.Error())}
	if skipped > 0 {
		attrs = append(attrs, slog.Int64("not_logged_since_last", skipped))
	}
	return attrs
}

// respondError writes the error body of row with msg, and the headers its
// status asks for.
func (s *server) respondError(ex *exchange, row errorRow, msg string) {
	switch row.status {
	case http.StatusServiceUnavailable:
		ex.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		ex.Header().Set("WWW-Authenticate", `Bearer realm="octostore"`)
	}
	ex.code = row.code
	writeJSON(ex, row.status, &errorBody{Error: msg, Code: row.code, RequestID: ex.requestID})
}

// limitMsg is the sentence of a lock_limit_exceeded answer.
func limitMsg(max int) string {
	return fmt.Sprintf("the account already holds %d unexpired locks, its maximum; release one first", max)
}
