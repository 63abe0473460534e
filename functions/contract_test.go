package functions_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
)

// TestEnvHoldsEveryAnswerToTheDocument shows that the handler every test of
// this package goes through is checked against the OpenAPI document: an
// answer outside it (a store name the document does not list) is reported.
func TestEnvHoldsEveryAnswerToTheDocument(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, func(d *functions.Deps) { d.StoreName = "memcached" })
			c := &captureT{TB: t}
			r := httptest.NewRequest("GET", "http://octostore.test/health", nil)
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r.WithContext(contracttest.WithT(r.Context(), c)))
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"store":"memcached"`) {
				t.Fatalf("health: %d %s", w.Code, w.Body.String())
			}
			if len(c.errs) != 1 || !strings.Contains(c.errs[0], "GET /health → 200") || !strings.Contains(c.errs[0], "memcached") {
				t.Errorf("the contract check reported %q, want one failure naming the store", c.errs)
			}
		})
	}
}
