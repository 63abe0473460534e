package functions_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestRetryAfter checks that a held answer says how long the holder's lease
// has left, by the store's clock.
func TestRetryAfter(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			if w := e.do(t, post("/locks/job/acquire", `{"lease_id":"L","ttl_seconds":60}`)); w.Code != 200 {
				t.Fatalf("acquire: %d %s", w.Code, w.Body.String())
			}
			e.advance(3 * time.Second)
			w := e.do(t, post("/locks/job/acquire", `{"lease_id":"M"}`))
			if w.Code != 409 {
				t.Fatalf("second acquire: %d %s", w.Code, w.Body.String())
			}
			ms, _ := decode(t, w)["retry_after_ms"].(float64)
			if ms <= 52000 || ms > 57000 {
				t.Errorf("retry_after_ms = %v, want 57000 less the time the requests took", ms)
			}
		})
	}
}

// TestOneWinner races many leases of one account for one lock through the
// handler: exactly one acquires, the others are told it is held by it.
func TestOneWinner(t *testing.T) {
	const n = 16
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			codes := make([]int, n)
			holders := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					w := e.do(t, post("/locks/leader/acquire", fmt.Sprintf(`{"lease_id":"r%d"}`, i)))
					codes[i] = w.Code
					var m struct {
						HolderID string `json:"holder_id"`
					}
					json.Unmarshal(w.Body.Bytes(), &m) // checkCommon reports a bad body
					holders[i] = m.HolderID
				})
			}
			wg.Wait()
			winner := -1
			for i, c := range codes {
				switch c {
				case 200:
					if winner >= 0 {
						t.Fatalf("two winners: r%d and r%d", winner, i)
					}
					winner = i
				case 409:
				default:
					t.Errorf("r%d: status %d", i, c)
				}
			}
			if winner < 0 {
				t.Fatal("no winner")
			}
			w := e.do(t, get("/locks/leader"))
			m := decode(t, w)
			if m["lease_id"] != fmt.Sprintf("r%d", winner) {
				t.Errorf("lock held by %v, winner was r%d", m["lease_id"], winner)
			}
			for i, h := range holders {
				if i != winner && h != m["holder_id"] {
					t.Errorf("r%d was told holder %q, holder is %v", i, h, m["holder_id"])
				}
			}
		})
	}
}
