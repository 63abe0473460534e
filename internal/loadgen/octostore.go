package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTPTarget is OctoStore's HTTP API: POST /locks/{name}/acquire with
// {"ttl_seconds":N} (the server picks the lease id) and POST
// /locks/{name}/release with {"lease_id":…}, authenticated with a bearer
// token. A 409 "held" answer to acquire is a held lock; any other status
// but 200 is an error. All clients share one keep-alive transport that
// keeps an idle connection per client.
type HTTPTarget struct {
	base   string
	auth   string
	ttl    string
	client *http.Client
	tr     *http.Transport
}

// NewHTTPTarget returns a target for the OctoStore server at baseURL
// (http://host:port, no trailing path) with bearer token token. ttl is the
// lease TTL requested (whole seconds, at least 1s). conns is the number of
// connections to keep open (the number of clients).
func NewHTTPTarget(baseURL, token string, ttl time.Duration, conns int) (*HTTPTarget, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: URL %q: want http://host:port", baseURL)
	}
	if token == "" {
		return nil, fmt.Errorf("loadgen: a bearer token is required")
	}
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	tr := newTransport(conns)
	return &HTTPTarget{
		base:   strings.TrimRight(baseURL, "/"),
		auth:   "Bearer " + token,
		ttl:    fmt.Sprintf(`{"ttl_seconds":%d}`, secs),
		client: &http.Client{Transport: tr},
		tr:     tr,
	}, nil
}

// newTransport is a keep-alive transport with an idle connection for each
// of conns clients.
func newTransport(conns int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns + 16
	tr.MaxIdleConnsPerHost = conns + 16
	tr.IdleConnTimeout = 90 * time.Second
	tr.DisableCompression = true
	tr.ForceAttemptHTTP2 = false
	return tr
}

// Name implements Target.
func (t *HTTPTarget) Name() string { return "octostore" }

// NewClient implements Target.
func (t *HTTPTarget) NewClient(ctx context.Context, id int) (Client, error) {
	return &httpClient{t: t}, nil
}

// Close implements Target.
func (t *HTTPTarget) Close() error {
	t.tr.CloseIdleConnections()
	return nil
}

type httpClient struct {
	t   *HTTPTarget
	buf bytes.Buffer
}

// post sends body to path and returns the status and the response body
// (valid until the next call).
func (c *httpClient) post(ctx context.Context, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.t.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header["Authorization"] = []string{c.t.auth}
	req.Header["Content-Type"] = []string{"application/json"}
	resp, err := c.t.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(io.LimitReader(resp.Body, 1<<20)); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, c.buf.Bytes(), nil
}

// Acquire implements Client.
func (c *httpClient) Acquire(ctx context.Context, name string) (string, bool, error) {
	status, body, err := c.post(ctx, "/locks/"+name+"/acquire", c.t.ttl)
	if err != nil {
		return "", false, err
	}
	switch status {
	case http.StatusOK:
		var v struct {
			LeaseID string `json:"lease_id"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.LeaseID == "" {
			return "", false, fmt.Errorf("acquire: 200 without a lease_id: %.200s", body)
		}
		return v.LeaseID, true, nil
	case http.StatusConflict:
		return "", false, nil
	}
	return "", false, fmt.Errorf("acquire: HTTP %d: %.200s", status, body)
}

// Release implements Client.
func (c *httpClient) Release(ctx context.Context, name, leaseID string) error {
	b, _ := json.Marshal(struct {
		LeaseID string `json:"lease_id"`
	}{leaseID})
	status, body, err := c.post(ctx, "/locks/"+name+"/release", string(b))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("release: HTTP %d: %.200s", status, body)
	}
	return nil
}

// Close implements Client.
func (c *httpClient) Close() error { return nil }
