package loadgen

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// HTTPTarget is OctoStore's HTTP API: POST /locks/{name}/acquire with
// {"ttl_seconds":N} (the server picks the lease id) and POST
// /locks/{name}/release with {"lease_id":…}, authenticated with a bearer
// token. A 409 "held" answer to acquire is a held lock; any other status
// but 200 is an error. All clients share one poster that keeps a
// keep-alive connection per client.
type HTTPTarget struct {
	p    *poster
	auth string
	ttl  []byte
}

// NewHTTPTarget returns a target for the OctoStore server at baseURL
// (http://host:port or https://host:port, no trailing path) with bearer
// token token. ttl is the lease TTL requested (whole seconds, at least
// 1s). conns is the number of connections to keep open (the number of
// clients). tlsConf is used for https (nil: the system's authorities).
func NewHTTPTarget(baseURL, token string, ttl time.Duration, conns int, tlsConf *tls.Config) (*HTTPTarget, error) {
	p, err := newPoster(baseURL, conns, tlsConf)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("loadgen: a bearer token is required")
	}
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	return &HTTPTarget{p: p, auth: "Bearer " + token, ttl: fmt.Appendf(nil, `{"ttl_seconds":%d}`, secs)}, nil
}

// Name implements Target.
func (t *HTTPTarget) Name() string { return "octostore" }

// NewClient implements Target.
func (t *HTTPTarget) NewClient(ctx context.Context, id int) (Client, error) {
	return &httpClient{t: t}, nil
}

// Close implements Target.
func (t *HTTPTarget) Close() error {
	t.p.close()
	return nil
}

type httpClient struct {
	t *HTTPTarget
}

// Acquire implements Client.
func (c *httpClient) Acquire(ctx context.Context, name string) (lease string, acquired bool, err error) {
	err = c.t.p.post(ctx, "/locks/"+name+"/acquire", c.t.auth, c.t.ttl, func(status int, body []byte) error {
		switch status {
		case http.StatusOK:
			var v struct {
				LeaseID string `json:"lease_id"`
			}
			if err := json.Unmarshal(body, &v); err != nil || v.LeaseID == "" {
				return fmt.Errorf("acquire: 200 without a lease_id: %.200s", body)
			}
			lease, acquired = v.LeaseID, true
			return nil
		case http.StatusConflict:
			return nil
		}
		return fmt.Errorf("acquire: HTTP %d: %.200s", status, body)
	})
	return lease, acquired, err
}

// Release implements Client.
func (c *httpClient) Release(ctx context.Context, name, leaseID string) error {
	b, _ := json.Marshal(struct {
		LeaseID string `json:"lease_id"`
	}{leaseID})
	return c.t.p.post(ctx, "/locks/"+name+"/release", c.t.auth, b, func(status int, body []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("release: HTTP %d: %.200s", status, body)
		}
		return nil
	})
}

// Close implements Client.
func (c *httpClient) Close() error { return nil }
