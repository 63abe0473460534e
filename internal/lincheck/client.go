package lincheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// Client speaks OctoStore's lock API for one account. It is safe for
// concurrent use if its HTTP client is.
type Client struct {
	// BaseURL is the server, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Token is the account's bearer token.
	Token string
	// HTTP sends the requests; nil means a client with a 5 s timeout.
	HTTP *http.Client
}

// ErrNotSent marks a request that never reached the server (the
// connection could not be made): it certainly had no effect.
var ErrNotSent = errors.New("request not sent")

// ContractError is an answer the API contract does not allow for the
// operation (a 500, a 4xx other than the expected ones, a malformed body).
type ContractError struct {
	Input  Input
	Status int
	Body   string
}

// Error describes the breach.
func (e *ContractError) Error() string {
	return fmt.Sprintf("%s %s: unexpected answer %d: %.300s", e.Input.Kind, e.Input.Lock, e.Status, e.Body)
}

// answer is the union of the JSON bodies of the lock endpoints.
type answer struct {
	Status       string `json:"status"`
	Code         string `json:"code"`
	LeaseID      string `json:"lease_id"`
	HolderID     string `json:"holder_id"`
	FencingToken int64  `json:"fencing_token"`
	ExpiresAt    string `json:"expires_at"`
	TTLSeconds   int64  `json:"ttl_seconds"`
	Name         string `json:"name"`
}

// Do sends one operation and classifies the answer. A lost answer
// (transport error, timeout, 503 store_unavailable) gives Outcome Unknown
// and a nil error. A request that could not even be sent gives an error
// wrapping ErrNotSent; an answer the contract forbids gives a
// *ContractError (with Outcome Unknown, since a 500 may have had an
// effect).
func (c *Client) Do(ctx context.Context, in Input) (Output, error) {
	var method, path string
	body := map[string]any{}
	switch in.Kind {
	case OpAcquire:
		method, path = http.MethodPost, "/locks/"+url.PathEscape(in.Lock)+"/acquire"
		body["lease_id"] = in.LeaseID
		body["ttl_seconds"] = int64(in.TTL / time.Second)
	case OpRenew:
		method, path = http.MethodPost, "/locks/"+url.PathEscape(in.Lock)+"/renew"
		body["lease_id"] = in.LeaseID
		body["ttl_seconds"] = int64(in.TTL / time.Second)
	case OpRelease:
		method, path = http.MethodPost, "/locks/"+url.PathEscape(in.Lock)+"/release"
		body["lease_id"] = in.LeaseID
	case OpGet:
		method, path = http.MethodGet, "/locks/"+url.PathEscape(in.Lock)
		body = nil
	default:
		return Output{}, fmt.Errorf("lincheck: unknown operation %v", in.Kind)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return Output{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return Output{Err: err.Error()}, fmt.Errorf("%w: %v", ErrNotSent, err)
		}
		return Output{Err: err.Error()}, nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return Output{Status: resp.StatusCode, Err: "reading body: " + err.Error()}, nil
	}
	out := Output{Status: resp.StatusCode}
	breach := func() (Output, error) {
		out.Outcome = Unknown
		out.Err = fmt.Sprintf("contract breach: status %d", resp.StatusCode)
		return out, &ContractError{Input: in, Status: resp.StatusCode, Body: string(raw)}
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		out.Err = "503 " + string(bytes.TrimSpace(raw))
		return out, nil
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return breach()
	}
	parseExp := func() bool {
		t, err := time.Parse(time.RFC3339Nano, a.ExpiresAt)
		out.ExpiresAt = t
		return err == nil
	}
	switch {
	case resp.StatusCode == http.StatusOK && in.Kind == OpAcquire && a.Status == "acquired":
		out.Outcome, out.LeaseID, out.Token = Acquired, a.LeaseID, a.FencingToken
		out.TTL = time.Duration(a.TTLSeconds) * time.Second
		if !parseExp() || a.FencingToken <= 0 {
			return breach()
		}
	case resp.StatusCode == http.StatusConflict && in.Kind == OpAcquire && a.Status == "held":
		out.Outcome, out.HolderID = Held, a.HolderID
		if !parseExp() {
			return breach()
		}
	case resp.StatusCode == http.StatusOK && in.Kind == OpRenew && a.Status == "renewed":
		out.Outcome, out.LeaseID, out.Token = Renewed, a.LeaseID, a.FencingToken
		out.TTL = time.Duration(a.TTLSeconds) * time.Second
		if !parseExp() || a.FencingToken <= 0 {
			return breach()
		}
	case resp.StatusCode == http.StatusOK && in.Kind == OpRelease && a.Status == "released":
		out.Outcome = Released
	case resp.StatusCode == http.StatusConflict && (in.Kind == OpRenew || in.Kind == OpRelease) && a.Code == "lease_not_current":
		out.Outcome = NotCurrent
	case resp.StatusCode == http.StatusOK && in.Kind == OpGet && a.Status == "held":
		out.Outcome, out.LeaseID, out.HolderID, out.Token = Held, a.LeaseID, a.HolderID, a.FencingToken
		if !parseExp() || a.FencingToken <= 0 || a.HolderID != lockcore.HolderID(a.LeaseID) {
			return breach()
		}
	case resp.StatusCode == http.StatusOK && in.Kind == OpGet && a.Status == "free":
		out.Outcome = Free
	default:
		return breach()
	}
	return out, nil
}
