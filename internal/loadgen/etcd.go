package loadgen

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// EtcdTarget is etcd's v3 JSON gateway, used the way etcd's own lock
// client is: each client grants one lease (POST /v3/lease/grant) when it is
// created, then locks with POST /v3/lock/lock {name, lease} and unlocks
// with POST /v3/lock/unlock {key}. etcd's lock waits while another holder
// has the lock, so this target never answers "held"; in contended mode its
// acquire latency includes the wait in etcd's queue. Closing a client
// revokes its lease, which also deletes any lock key it still owns.
type EtcdTarget struct {
	p        *poster
	leaseTTL int64
}

// NewEtcdTarget returns a target for the etcd client URL baseURL
// (http://host:2379, or https). leaseTTL is the TTL of each client's
// lease; it must outlast the run (the target does not keep leases alive).
// tlsConf is used for https (nil: the system's authorities).
func NewEtcdTarget(baseURL string, leaseTTL time.Duration, conns int, tlsConf *tls.Config) (*EtcdTarget, error) {
	p, err := newPoster(baseURL, conns, tlsConf)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	secs := int64(leaseTTL / time.Second)
	if secs < 5 {
		secs = 5
	}
	return &EtcdTarget{p: p, leaseTTL: secs}, nil
}

// Name implements Target.
func (t *EtcdTarget) Name() string { return "etcd" }

// Close implements Target.
func (t *EtcdTarget) Close() error {
	t.p.close()
	return nil
}

// NewClient implements Target: it grants the client's lease.
func (t *EtcdTarget) NewClient(ctx context.Context, id int) (Client, error) {
	c := &etcdClient{t: t}
	var resp struct {
		ID    json.RawMessage `json:"ID"`
		Error string          `json:"error"`
	}
	if err := c.call(ctx, "/v3/lease/grant", map[string]any{"TTL": t.leaseTTL}, &resp); err != nil {
		return nil, fmt.Errorf("lease grant: %w", err)
	}
	id64, err := strconv.ParseInt(strings.Trim(string(resp.ID), `"`), 10, 64)
	if err != nil || id64 == 0 {
		return nil, fmt.Errorf("lease grant: no lease ID in the answer (ID %s, error %q)", resp.ID, resp.Error)
	}
	c.lease = strconv.FormatInt(id64, 10)
	return c, nil
}

type etcdClient struct {
	t     *EtcdTarget
	lease string
	last  []byte // the last answer's body, for error messages
}

// call posts v as JSON to path and decodes the answer into out; a non-200
// status is an error.
func (c *etcdClient) call(ctx context.Context, path string, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.t.p.post(ctx, path, "", b, func(status int, body []byte) error {
		c.last = append(c.last[:0], body[:min(len(body), 200)]...)
		if status != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d: %.200s", path, status, body)
		}
		if out != nil {
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("%s: %w: %.200s", path, err, body)
			}
		}
		return nil
	})
}

// Acquire implements Client: /v3/lock/lock blocks until the lock is ours;
// the handle is the lock key (base64, as etcd returns it).
func (c *etcdClient) Acquire(ctx context.Context, name string) (string, bool, error) {
	var resp struct {
		Key string `json:"key"`
	}
	req := map[string]string{"name": base64.StdEncoding.EncodeToString([]byte(name)), "lease": c.lease}
	if err := c.call(ctx, "/v3/lock/lock", req, &resp); err != nil {
		return "", false, err
	}
	if resp.Key == "" {
		return "", false, fmt.Errorf("lock: answer without a key: %.200s", c.last)
	}
	return resp.Key, true, nil
}

// Release implements Client.
func (c *etcdClient) Release(ctx context.Context, name, key string) error {
	return c.call(ctx, "/v3/lock/unlock", map[string]string{"key": key}, nil)
}

// Close implements Client: it revokes the lease (deleting any key it owns).
func (c *etcdClient) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.call(ctx, "/v3/lease/revoke", map[string]string{"ID": c.lease}, nil)
}
