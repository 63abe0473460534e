package storetest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// faultEnv selects a memStore fault in a child test process.
const faultEnv = "STORETEST_MEMSTORE_FAULT"

// memHarness opens memStores with the given fault.
func memHarness(fault string) Harness {
	return Harness{Open: func(t *testing.T) *Instance {
		d := newMemData()
		inst := &Instance{
			Store: &memStore{d: d, fault: fault},
			Advance: func(dur time.Duration) {
				d.mu.Lock()
				d.now = d.now.Add(dur)
				d.mu.Unlock()
			},
		}
		inst.Reopen = func() lockcore.Store {
			inst.Store.Close()
			if fault == faultAmnesia {
				d = newMemData()
			}
			return &memStore{d: d, fault: fault}
		}
		t.Cleanup(func() { inst.Store.Close() })
		return inst
	}}
}

// TestMemStore runs the suite against the in-memory store: a correct one
// (it must pass), or, in a child process started by TestSuiteCatchesFaults,
// one with the fault named in STORETEST_MEMSTORE_FAULT.
func TestMemStore(t *testing.T) {
	Run(t, memHarness(os.Getenv(faultEnv)))
}

// TestSuiteCatchesFaults proves the suite can fail: each broken memStore must
// fail the subtests that check the promise it breaks.
func TestSuiteCatchesFaults(t *testing.T) {
	if os.Getenv(faultEnv) != "" {
		t.Fatalf("%s is set in the parent test process; it is only for child processes", faultEnv)
	}
	for _, tc := range []struct {
		fault    string
		wantFail []string
	}{
		{faultRevive, []string{"Expiry"}},
		{faultNoFence, []string{"AcquireHappyPath", "Expiry", "Fencing", "MutualExclusion", "Reopen"}},
		{faultNoQuota, []string{"Quota"}},
		{faultCountExpired, []string{"Expiry"}},
		{faultShared, []string{"AccountIsolation"}},
		{faultSteal, []string{"AcquireHappyPath", "MutualExclusion"}},
		{faultRotateKeepOld, []string{"Tokens", "RotateTokenConcurrent"}},
		{faultAmnesia, []string{"Reopen"}},
		{faultIgnoreCtx, []string{"CancelledContext"}},
		{faultUnsorted, []string{"AcquireHappyPath"}},
		{faultSeconds, []string{"AcquireHappyPath", "IdempotentReacquire"}},
		{faultNoValidate, []string{"InvalidInput"}},
		{faultNoClose, []string{"Reopen"}},
		{faultIDAny, []string{"Tokens"}},
		{faultAsAny, []string{"TokenLocks"}},
		{faultRevokeOne, []string{"RevokeAccountTokens"}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMemStore$", "-test.count=1")
			cmd.Env = append(os.Environ(), faultEnv+"="+tc.fault)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite against a memStore with fault %q: want a failing run, got a pass:\n%s", tc.fault, out)
			}
			for _, sub := range tc.wantFail {
				if !strings.Contains(string(out), "--- FAIL: TestMemStore/"+sub+" ") {
					t.Errorf("suite against a memStore with fault %q: want subtest %s to fail, it did not:\n%s", tc.fault, sub, out)
				}
			}
		})
	}
}
