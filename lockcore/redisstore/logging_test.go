package redisstore

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestSlogLogger: a go-redis line becomes one Warn record with the line,
// without go-redis' "redis: " prefix, in "detail", redacted first.
func TestSlogLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slogLogger{slog.New(slog.NewJSONHandler(&buf, nil)), func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") }}
	l.Printf(t.Context(), "redis: dial %s: %v", "127.0.0.1:1", "auth hunter2 refused")
	//lint:ignore SA1012 go-redis may pass no context, and the logger must take it
	l.Printf(nil, "no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	var rec struct{ Level, Msg, Detail string }
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Level != "WARN" || rec.Msg != "redis client" || rec.Detail != "dial 127.0.0.1:1: auth [redacted] refused" {
		t.Fatalf("record %+v", rec)
	}
}
