package functions_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/lockcore"
)

// TestOpenAPIStatesTheServersLimits: a server configured with other limits
// (octostore serve --max-ttl, --default-ttl, --max-metadata) publishes them
// in /openapi.json, so that a client generated from the document sends
// what the server accepts, and the document matches the server's answers.
func TestOpenAPIStatesTheServersLimits(t *testing.T) {
	limits := lockcore.Limits{MaxTTL: 7200 * time.Second, DefaultTTL: 30 * time.Second, MaxMetadataBytes: 10, MaxHeldLocks: 2}
	e := newEnv(t, sqliteBackend, func(d *functions.Deps) { d.Limits = limits })
	rec := httptest.NewRecorder()
	e.bare.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d", rec.Code)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"AcquireRequest", "RenewRequest", "Acquired", "Renewed"} {
		ttl := doc.Components.Schemas[name].Properties["ttl_seconds"]
		if ttl["maximum"] != 7200.0 {
			t.Errorf("%s.ttl_seconds.maximum = %v, want 7200 (the server's --max-ttl)", name, ttl["maximum"])
		}
		if d, ok := ttl["default"]; ok && d != 30.0 {
			t.Errorf("%s.ttl_seconds.default = %v, want 30 (the server's --default-ttl)", name, d)
		}
	}
	for _, name := range []string{"AcquireRequest", "Acquired", "Held", "LockHeld"} {
		if m := doc.Components.Schemas[name].Properties["metadata"]["maxLength"]; m != 10.0 {
			t.Errorf("%s.metadata.maxLength = %v, want 10 (the server's --max-metadata)", name, m)
		}
	}
}
