package functions

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// TestStepContext: a store step's context outlives the request's
// cancellation (a client's half-close), ends after its own bound, and
// keeps a deadline of the request (a Lambda invocation's) that comes first.
func TestStepContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/health", nil).WithContext(parent)
	ctx, stop := stepContext(r, time.Minute)
	defer stop()
	cancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("a step's context after the request's was cancelled: %v, want it going on", err)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Minute || time.Until(d) < 50*time.Second {
		t.Errorf("a step's deadline: %v (%v), want about a minute from now", d, ok)
	}

	soon := time.Now().Add(5 * time.Second)
	dl, cancelDL := context.WithDeadline(context.Background(), soon)
	defer cancelDL()
	ctx2, stop2 := stepContext(r.WithContext(dl), time.Minute)
	defer stop2()
	if d, ok := ctx2.Deadline(); !ok || !d.Equal(soon) {
		t.Errorf("a step's deadline under a request deadline of %v: %v (%v), want the request's", soon, d, ok)
	}
}
