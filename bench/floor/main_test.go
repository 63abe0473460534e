package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/loadgen"
)

// The load generator's OctoStore client runs full cycles against the floor:
// its answers have the shape the client and the contract expect.
func TestLoadgenCyclesAgainstFloor(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	target, err := loadgen.NewHTTPTarget(srv.URL, "any", 30*time.Second, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	res, err := loadgen.Run(context.Background(), target, loadgen.Config{Clients: 4, Cycles: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles != 200 || res.Errors != 0 || res.Held != 0 {
		t.Fatalf("cycles %d errors %d held %d, want 200, 0, 0", res.Cycles, res.Errors, res.Held)
	}
}

func TestAnswers(t *testing.T) {
	h := newHandler()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec
	}
	var first, second struct {
		Status       string `json:"status"`
		LeaseID      string `json:"lease_id"`
		FencingToken int64  `json:"fencing_token"`
		ExpiresAt    string `json:"expires_at"`
	}
	for _, v := range []any{&first, &second} {
		rec := do("POST", "/locks/a/acquire", `{"ttl_seconds":30}`)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("acquire: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("acquire answer %q: %v", rec.Body, err)
		}
	}
	if first.Status != "acquired" || first.LeaseID == "" || second.FencingToken != first.FencingToken+1 {
		t.Fatalf("acquire answers %+v then %+v", first, second)
	}
	if _, err := time.Parse(time.RFC3339, first.ExpiresAt); err != nil {
		t.Fatalf("expires_at %q: %v", first.ExpiresAt, err)
	}
	if rec := do("POST", "/locks/a%20b/release", `{"lease_id":"x"}`); rec.Code != http.StatusOK || rec.Body.String() != `{"status":"released","name":"a b"}` {
		t.Fatalf("release: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", "/locks/a/acquire", strings.Repeat("x", functions.MaxBodyBytes+1)); rec.Code != http.StatusBadRequest {
		t.Fatalf("oversized body: %d, want 400", rec.Code)
	}
	if rec := do("GET", "/locks/a/acquire", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET acquire: %d, want 405", rec.Code)
	}
	if rec := do("GET", "/health", ""); rec.Code != http.StatusOK {
		t.Fatalf("health: %d", rec.Code)
	}
}
