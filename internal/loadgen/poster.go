package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// defaultRequestTimeout bounds a request whose context has no deadline.
const defaultRequestTimeout = 30 * time.Second

// poster sends JSON POST requests to one HTTP/1.1 server over keep-alive
// connections, the same way for every HTTP target, so the load generator
// costs each target the same. It uses fasthttp's client, which spends a
// fraction of net/http's CPU per request: on a 2-core machine the load
// generator shares the cores with the server under test, and a heavy
// client would cap every target's figure at its own cost. Safe for
// concurrent use.
type poster struct {
	hc *fasthttp.HostClient
}

// newPoster returns a poster for baseURL (http://host:port or
// https://host:port; the port defaults to 80 or 443) keeping up to conns
// connections open. tlsConf is used for https (nil: Go's defaults, which
// trust the system's certificate authorities).
func newPoster(baseURL string, conns int, tlsConf *tls.Config) (*poster, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("loadgen: URL %q: want http://host:port or https://host:port", baseURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	return &poster{hc: &fasthttp.HostClient{
		Addr:                          addr,
		IsTLS:                         u.Scheme == "https",
		TLSConfig:                     tlsConf,
		MaxConns:                      conns + 16,
		MaxIdleConnDuration:           90 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}}, nil
}

// post sends body to path with the given Authorization value (none when
// empty) and calls read with the status and the answer's body (valid only
// during read). The request ends at ctx's deadline, or after
// defaultRequestTimeout; it is not otherwise cancelled by ctx.
func (p *poster) post(ctx context.Context, path, auth string, body []byte, read func(status int, body []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := fasthttp.AcquireRequest()
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(path)
	if p.hc.IsTLS {
		req.URI().SetScheme("https")
		req.URI().SetHost(p.hc.Addr)
	}
	req.Header.SetHost(p.hc.Addr)
	req.Header.SetContentType("application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.SetBodyRaw(body)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultRequestTimeout)
	}
	if err := p.hc.DoDeadline(req, res, deadline); err != nil {
		return err
	}
	return read(res.StatusCode(), res.Body())
}

// close closes the idle connections.
func (p *poster) close() { p.hc.CloseIdleConnections() }
