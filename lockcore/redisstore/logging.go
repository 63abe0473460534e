package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis' own log lines (failed dials, pool and
// reconnection notices) to logger as Warn records with the message
// "redis client" and the line in "detail", instead of plain text on
// stderr, so that a JSON log stays JSON. redact, when not nil, is applied
// to each line first (to take out secrets). go-redis has one logger per
// process: this affects every client of the process, and the last call
// wins. A nil logger changes nothing. Safe for concurrent use with the
// clients logging.
func SetLogger(logger *slog.Logger, redact func(string) string) {
	if logger == nil {
		return
	}
	redis.SetLogger(slogLogger{logger, redact})
}

// slogLogger adapts a *slog.Logger to go-redis' logging interface.
type slogLogger struct {
	l      *slog.Logger
	redact func(string) string
}

// Printf implements go-redis' internal.Logging.
func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	line := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if s.redact != nil {
		line = s.redact(line)
	}
	s.l.LogAttrs(ctx, slog.LevelWarn, "redis client", slog.String("detail", line))
}
