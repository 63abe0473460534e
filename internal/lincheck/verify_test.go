package lincheck

import (
	"fmt"
	"testing"
	"time"
)

// recordingTB is a testing.TB that records failures instead of failing.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestVerifyFails: Verify, which the store tests rely on, fails the test
// for an illegal history and not for a legal one.
func TestVerifyFails(t *testing.T) {
	t.Setenv("OCTOSTORE_ARTIFACTS", t.TempDir())
	bad := hist(
		op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
		op{1, 2, 3, acq("x", "b"), acquired("b", 2)},
	)
	rt := &recordingTB{TB: t}
	res := Verify(rt, bad, time.Minute, "verify-bad")
	if len(rt.errors) != 1 || res.Visualization == "" {
		t.Fatalf("illegal history: errors %q, result %+v; want one error and a visualisation", rt.errors, res)
	}
	rt = &recordingTB{TB: t}
	Verify(rt, hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)}), time.Minute, "verify-good")
	if len(rt.errors) != 0 {
		t.Fatalf("legal history: errors %q", rt.errors)
	}
}
