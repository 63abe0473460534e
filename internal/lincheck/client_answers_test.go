package lincheck

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// answerWith serves one canned answer for every request.
func answerWith(t *testing.T, status int, body string) *Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return &Client{BaseURL: ts.URL, Token: "os_t"}
}

// TestClientClassifiesMoreAnswers: answers Do must classify exactly, found by a mutation
// review.
func TestClientClassifiesMoreAnswers(t *testing.T) {
	ctx := context.Background()
	acquire := Input{Kind: OpAcquire, Lock: "x", LeaseID: "a", TTL: time.Hour}
	renewIn := Input{Kind: OpRenew, Lock: "x", LeaseID: "a", TTL: time.Hour}

	// A fencing token of 0 is no token: recorded as acquired, the model
	// would take it for an unknown one and accept anything.
	out, err := answerWith(t, 200, `{"status":"acquired","lease_id":"a","fencing_token":0,"expires_at":"2026-11-27T22:43:02.123Z","ttl_seconds":3600}`).Do(ctx, acquire)
	var ce *ContractError
	if !errors.As(err, &ce) || out.Outcome != Unknown {
		t.Errorf("acquired with token 0: %+v, %v; want Unknown and a contract breach", out, err)
	}

	// The renewed ttl places the lease in time (at = expires_at - ttl).
	out, err = answerWith(t, 200, `{"status":"renewed","lease_id":"a","fencing_token":7,"expires_at":"2026-11-27T22:43:02.123Z","ttl_seconds":30}`).Do(ctx, renewIn)
	if err != nil || out.Outcome != Renewed || out.TTL != 30*time.Second || out.Token != 7 || out.LeaseID != "a" ||
		!out.ExpiresAt.Equal(time.Date(2026, 11, 27, 22, 43, 2, 123e6, time.UTC)) {
		t.Errorf("renewed: %+v, %v; want Renewed a token 7 ttl 30s", out, err)
	}

	// lease_not_current is an answer only with 409.
	out, err = answerWith(t, 500, `{"error":"bug","code":"lease_not_current","request_id":"r"}`).Do(ctx, Input{Kind: OpRelease, Lock: "x", LeaseID: "a"})
	if !errors.As(err, &ce) || out.Outcome != Unknown {
		t.Errorf("500 lease_not_current: %+v, %v; want Unknown and a contract breach", out, err)
	}
}

// TestClientResetAfterRequest: a connection reset after the server read
// the request is a lost answer (Unknown, recorded), not an unsent request
// (which Run leaves out of the history).
func TestClientResetAfterRequest(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST
		}
		conn.Close()
	}))
	defer ts.Close()
	cl := &Client{BaseURL: ts.URL, Token: "os_t"}
	out, err := cl.Do(context.Background(), Input{Kind: OpAcquire, Lock: "x", LeaseID: "a", TTL: time.Hour})
	if err != nil || out.Outcome != Unknown || out.Err == "" {
		t.Fatalf("reset after the request: %+v, %v; want Unknown with a reason and no error", out, err)
	}
}
