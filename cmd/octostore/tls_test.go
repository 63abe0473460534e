package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/tlstest"
)

// TestServeOverTLS: with --tls-cert and --tls-key, serve answers the API
// over HTTPS (HTTP/1.1, the contract's answers), prints a first-start curl
// line with an https URL, answers plain HTTP on its port with 400, serves
// a renewed certificate without a restart, and does not warn of plain
// HTTP.
func TestServeOverTLS(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	ca := tlstest.NewCA(t)
	cert, key := ca.ServerPairFiles(t, 2)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, ForceAttemptHTTP2: true, DisableKeepAlives: true}
	client := &http.Client{Timeout: clientTimeout, Transport: contracttest.New(t).Transport(tr)}
	sp := startServe(t, client, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "30s", "--db", filepath.Join(t.TempDir(), "tls.db"), "--tls-cert", cert, "--tls-key", key}
	})
	sp.mu.Lock()
	out, errOut := sp.stdout.String(), sp.stderr.String()
	sp.mu.Unlock()
	token := tokenRE.FindString(out)
	if token == "" {
		t.Fatalf("no first-start token on stdout:\n%s", out)
	}
	if want := "curl -X POST " + sp.base + "/locks/my-lock/acquire"; !strings.Contains(out, want) {
		t.Errorf("the first-start line does not say %q:\n%s", want, out)
	}
	if !strings.Contains(errOut, `"tls":true`) || strings.Contains(errOut, "plain HTTP") {
		t.Errorf("the start log should say tls=true and not warn of plain HTTP:\n%s", errOut)
	}

	acquire := func(name string) (serial int64) {
		t.Helper()
		req, _ := http.NewRequest("POST", sp.base+"/locks/"+name+"/acquire", strings.NewReader(`{"ttl_seconds":30}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("acquire over TLS: %v", err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != 200 || m["fencing_token"] == nil || resp.Proto != "HTTP/1.1" || resp.TLS == nil {
			t.Fatalf("acquire over TLS: %s %d %v, want HTTP/1.1 200 with a fencing token", resp.Proto, resp.StatusCode, m)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if serial := acquire("first"); serial != 2 {
		t.Fatalf("certificate %d, want 2", serial)
	}

	resp, err := http.Get("http://" + sp.addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP on the TLS port: %d, want 400", resp.StatusCode)
	}

	// A renewal: new files renamed over the old ones, as certbot does.
	renewed := t.TempDir()
	ca.WriteServerPair(t, filepath.Join(renewed, "c"), filepath.Join(renewed, "k"), 3)
	mustRename(t, filepath.Join(renewed, "c"), cert)
	mustRename(t, filepath.Join(renewed, "k"), key)
	if serial := acquire("second"); serial != 3 {
		t.Fatalf("after the renewal: certificate %d, want 3", serial)
	}
}

// TestServeReadsRenewalWithoutHandshake: serve looks at its TLS files on
// its own (KeyPair.Watch, every tlsWatchInterval), so a renewal is read,
// and logged with its serial number, while no client connects.
func TestServeReadsRenewalWithoutHandshake(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	ca := tlstest.NewCA(t)
	cert, key := ca.ServerPairFiles(t, 2)
	defer func(d time.Duration) { tlsWatchInterval = d }(tlsWatchInterval)
	tlsWatchInterval = 10 * time.Millisecond
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableKeepAlives: true}
	sp := startServe(t, &http.Client{Timeout: clientTimeout, Transport: tr}, func() []string {
		return []string{"--log-format", "json", "--db", filepath.Join(t.TempDir(), "watch.db"), "--tls-cert", cert, "--tls-key", key}
	})
	renewed := t.TempDir()
	ca.WriteServerPair(t, filepath.Join(renewed, "c"), filepath.Join(renewed, "k"), 3)
	mustRename(t, filepath.Join(renewed, "c"), cert)
	mustRename(t, filepath.Join(renewed, "k"), key)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		sp.mu.Lock()
		log := sp.stderr.String()
		sp.mu.Unlock()
		if strings.Contains(log, `"msg":"TLS certificate reloaded"`) && strings.Contains(log, `"serial":"3"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewal was not read without a handshake in 10 s; log:\n%s", log)
		}
	}
}

// TestServeWarnsOfPlainHTTP: serve on every interface without TLS logs a
// warning that tokens cross the network unencrypted, unless the public
// URL says a TLS proxy is in front; on loopback it does not warn.
func TestServeWarnsOfPlainHTTP(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	warning := regexp.MustCompile(`"level":"WARN","msg":"serving plain HTTP on a non-loopback address[^"]*","addr":"[^"]+","fix":"set --tls-cert and --tls-key`)
	for _, tc := range []struct {
		name, host, public string
		warn               bool
	}{
		{"every interface", "0.0.0.0", "", true},
		{"every interface behind a TLS proxy", "0.0.0.0", "https://locks.example.com", false},
		{"loopback", "127.0.0.1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OCTOSTORE_PUBLIC_URL", tc.public)
			sp := startServeOn(t, tc.host, &http.Client{Timeout: clientTimeout}, func() []string {
				return []string{"--log-format", "json", "--db", filepath.Join(t.TempDir(), "plain.db")}
			})
			sp.mu.Lock()
			errOut := sp.stderr.String()
			sp.mu.Unlock()
			if got := warning.MatchString(errOut); got != tc.warn {
				t.Errorf("warned of plain HTTP: %v, want %v; log:\n%s", got, tc.warn, errOut)
			}
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// net/http's lines about handshakes that a client abandoned without a word
// (probes) go to DEBUG; every other line of it, a client that spoke plain
// HTTP to the TLS port included, stays at WARN.
func TestHTTPErrorLogLevels(t *testing.T) {
	var buf bytes.Buffer
	w := httpErrorLog{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for line, level := range map[string]string{
		"http: TLS handshake error from 10.0.0.1:5: EOF\n":                                            "DEBUG",
		"http: TLS handshake error from 10.0.0.1:5: read tcp 1->2: connection reset by peer\n":        "DEBUG",
		"http: TLS handshake error from 10.0.0.1:5: read tcp 1->2: i/o timeout\n":                     "DEBUG",
		"http: TLS handshake error from 10.0.0.1:5: client sent an HTTP request to an HTTPS server\n": "WARN",
		"http: TLS handshake error from 10.0.0.1:5: remote error: tls: bad certificate\n":             "WARN",
		"http: Accept error: too many open files; retrying in 5ms\n":                                  "WARN",
	} {
		buf.Reset()
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if !strings.Contains(buf.String(), "level="+level+" ") || !strings.Contains(buf.String(), strings.TrimSuffix(line[:30], "\n")) {
			t.Errorf("%q logged as %q, want level %s", line, buf.String(), level)
		}
	}
}

// The first-start curl line and the default public URL follow the
// scheme the server serves; OCTOSTORE_PUBLIC_URL, when set, is the curl
// line's base, since a certificate rarely names 127.0.0.1.
func TestPublicURLWithTLS(t *testing.T) {
	t.Setenv("OCTOSTORE_PUBLIC_URL", "")
	if got := oauthConfigFromEnv("0.0.0.0:8443", true).PublicURL; got != "https://127.0.0.1:8443" {
		t.Errorf("default public URL with TLS: %q", got)
	}
	if got := curlBase("0.0.0.0:8443", true); got != "https://127.0.0.1:8443" {
		t.Errorf("curl base with TLS: %q", got)
	}
	t.Setenv("OCTOSTORE_PUBLIC_URL", " https://locks.example.com/ ")
	if got := curlBase("0.0.0.0:8443", true); got != "https://locks.example.com" {
		t.Errorf("curl base with OCTOSTORE_PUBLIC_URL: %q", got)
	}
}
