package functions

import (
	"log/slog"
	"net/http"

	"github.com/octostore/octostore/lockcore"
)

// healthRoutes is the unauthenticated liveness check.
func (s *server) healthRoutes() []route {
	return []route{
		{"GET /health", authNone, s.health},
	}
}

// healthBody is the answer of GET /health. The 503 answer also carries
// the error code and request id every error answer has.
type healthBody struct {
	Status    string `json:"status"`
	Store     string `json:"store"`
	Version   string `json:"version,omitempty"`
	Error     string `json:"error,omitempty"`
	Code      string `json:"code,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// health serves GET /health: 200 when the store answers a ping within
// healthTimeout, else 503 with Retry-After and a short safe sentence (the
// store's own error goes to the log only, at most once per
// outageLogInterval for each cause).
func (s *server) health(ex *exchange, r *http.Request) error {
	ctx, cancel := stepContext(r, healthTimeout) // not ended by a half-close
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		if ok, skipped := s.healthLog.allow(err.Error()); ok {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "health check: store ping failed",
				outageAttrs(ex.requestID, err, skipped)...)
		}
		ex.Header().Set("Retry-After", "1")
		row, _ := classify(lockcore.ErrUnavailable) // the code of every 503
		ex.code = row.code
		writeJSON(ex, http.StatusServiceUnavailable, &healthBody{
			Status:    "unavailable",
			Store:     s.storeName,
			Error:     "the lock store did not answer or cannot take writes",
			Code:      row.code,
			RequestID: ex.requestID,
		})
		return nil
	}
	writeJSON(ex, http.StatusOK, &healthBody{Status: "ok", Store: s.storeName, Version: s.version})
	return nil
}
