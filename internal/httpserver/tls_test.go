package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/syncbuf"
	"github.com/octostore/octostore/internal/tlstest"
)

// tlsServer serves a handler answering "ok" over TLS with the pair in
// certFile and keyFile, and returns its address and its log.
func tlsServer(t *testing.T, certFile, keyFile string) (string, *syncbuf.Buffer) {
	t.Helper()
	log := &syncbuf.Buffer{}
	kp, err := LoadKeyPair(certFile, keyFile, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), nil)
	if err := UseTLS(srv, kp); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), log
}

// tlsFixture makes a CA and a pair with serial 2 in files, and serves
// them with tlsServer.
func tlsFixture(t *testing.T) (ca *tlstest.CA, certFile, keyFile, addr string, log *syncbuf.Buffer) {
	t.Helper()
	ca = tlstest.NewCA(t)
	certFile, keyFile = ca.ServerPairFiles(t, 2)
	addr, log = tlsServer(t, certFile, keyFile)
	return ca, certFile, keyFile, addr, log
}

// fetch makes one request on a new connection, trusting ca, offering
// HTTP/2 as well as HTTP/1.1, and returns the answer's protocol and the
// serial number of the certificate the server presented.
func fetch(t *testing.T, ca *tlstest.CA, addr string) (proto string, serial int64) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	return resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

// replace writes a new pair the way certbot and cert-manager do (new
// files renamed over the old ones), dated a second later than the last
// so that no file system's timestamp granularity can hide the change.
func replace(t *testing.T, ca *tlstest.CA, certFile, keyFile string, serial int64, when time.Time) {
	t.Helper()
	replaceValid(t, ca, certFile, keyFile, serial, when, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// replaceValid is replace with a certificate valid from notBefore to
// notAfter.
func replaceValid(t *testing.T, ca *tlstest.CA, certFile, keyFile string, serial int64, when, notBefore, notAfter time.Time) {
	t.Helper()
	dir := t.TempDir()
	c, k := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	ca.WriteServerPairValid(t, c, k, serial, notBefore, notAfter)
	for _, f := range []string{c, k} {
		if err := os.Chtimes(f, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(c, certFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(k, keyFile); err != nil {
		t.Fatal(err)
	}
}

// A server with UseTLS answers over TLS with HTTP/1.1 even to a client
// that offers HTTP/2, serves a renewed pair from the next handshake, and
// keeps serving the last good pair (logging why once) while the files are
// broken or missing.
func TestTLSServesAndReloads(t *testing.T) {
	ca, certFile, keyFile, addr, log := tlsFixture(t)

	if proto, serial := fetch(t, ca, addr); proto != "HTTP/1.1" || serial != 2 {
		t.Fatalf("first answer: %s, certificate %d; want HTTP/1.1, 2", proto, serial)
	}
	when := time.Now().Add(time.Second)
	replace(t, ca, certFile, keyFile, 3, when)
	if _, serial := fetch(t, ca, addr); serial != 3 {
		t.Fatalf("after the renewal: certificate %d, want 3", serial)
	}
	if !strings.Contains(log.String(), "TLS certificate reloaded") {
		t.Errorf("the reload was not logged:\n%s", log)
	}

	// A key written halfway: the pair does not load.
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	when = when.Add(time.Second)
	os.Chtimes(keyFile, when, when)
	for range 3 {
		if _, serial := fetch(t, ca, addr); serial != 3 {
			t.Fatalf("with a broken key file: certificate %d, want the previous one, 3", serial)
		}
	}
	if n := strings.Count(log.String(), "TLS certificate not reloaded"); n != 1 {
		t.Errorf("a broken pair was logged %d times over 3 handshakes, want once:\n%s", n, log)
	}
	// A key from another pair: a mismatch, a new failure.
	other := t.TempDir()
	ca.WriteServerPair(t, filepath.Join(other, "c.pem"), filepath.Join(other, "k.pem"), 9)
	if err := os.Rename(filepath.Join(other, "k.pem"), keyFile); err != nil {
		t.Fatal(err)
	}
	if _, serial := fetch(t, ca, addr); serial != 3 {
		t.Fatalf("with a key that does not match: certificate %d, want 3", serial)
	}
	// The certificate file gone.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if _, serial := fetch(t, ca, addr); serial != 3 {
		t.Fatalf("with no certificate file: certificate %d, want 3", serial)
	}
	if n := strings.Count(log.String(), "TLS certificate not reloaded"); n != 3 {
		t.Errorf("want 3 distinct reload failures logged, got %d:\n%s", n, log)
	}
	if !strings.Contains(log.String(), "does not match") && !strings.Contains(log.String(), "private key") {
		t.Errorf("the mismatch is not explained:\n%s", log)
	}

	replace(t, ca, certFile, keyFile, 4, when.Add(time.Second))
	if _, serial := fetch(t, ca, addr); serial != 4 {
		t.Fatalf("after a good pair again: certificate %d, want 4", serial)
	}
}

// The server refuses TLS 1.1 and answers a plain HTTP request on its TLS
// port with 400 rather than hanging or serving it.
func TestTLSRefusesOldVersionsAndPlainHTTP(t *testing.T) {
	ca, _, _, addr, _ := tlsFixture(t)

	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("a TLS 1.2 handshake failed: %v", err)
	}
	conn.Close()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP on the TLS port: %d, want 400", resp.StatusCode)
	}
}

// LoadKeyPair names the file that is missing, and both files when they
// do not make a pair.
func TestLoadKeyPairErrors(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.WriteServerPair(t, certFile, keyFile, 2)
	otherCert, otherKey := filepath.Join(dir, "other-cert.pem"), filepath.Join(dir, "other-key.pem")
	ca.WriteServerPair(t, otherCert, otherKey, 3)
	missing := filepath.Join(dir, "missing.pem")

	for _, c := range []struct {
		name, cert, key string
		want            []string
	}{
		{"no certificate", missing, keyFile, []string{"TLS certificate file", missing}},
		{"no key", certFile, missing, []string{"TLS key file", missing}},
		{"mismatch", certFile, otherKey, []string{certFile, otherKey}},
		{"key as certificate", keyFile, keyFile, []string{keyFile}},
	} {
		_, err := LoadKeyPair(c.cert, c.key, nil)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	if _, err := LoadKeyPair(certFile, keyFile, nil); err != nil {
		t.Fatalf("a good pair: %v", err)
	}
	if err := UseTLS(New(http.NotFoundHandler(), nil), nil); err == nil {
		t.Error("UseTLS without a key pair succeeded")
	}
}

// A client that connects to the TLS port and never starts the handshake
// is cut off by the server (after ReadHeaderTimeout), so it cannot hold a
// connection and its goroutine.
func TestTLSHandshakeIsBounded(t *testing.T) {
	_, _, _, addr, _ := tlsFixture(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(start.Add(ReadHeaderTimeout + 10*time.Second))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held a silent connection %v after it opened", time.Since(start))
	}
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, err %v; want the connection closed", n, err)
	}
	if d := time.Since(start); d < ReadHeaderTimeout-time.Second {
		t.Fatalf("closed after %v, before ReadHeaderTimeout (%v): not by the timeout", d, ReadHeaderTimeout)
	}
}

// Handshakes that run together while the pair is renewed get a whole
// pair each (run with -race), and the renewal is served in the end.
func TestTLSConcurrentReload(t *testing.T) {
	ca, certFile, keyFile, addr, _ := tlsFixture(t)
	done := make(chan struct{})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableKeepAlives: true}, Timeout: 10 * time.Second}
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				resp, err := client.Get("https://" + addr + "/")
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
			}
		}()
	}
	when := time.Now()
	for serial := int64(3); serial < 8; serial++ {
		when = when.Add(time.Second)
		replace(t, ca, certFile, keyFile, serial, when)
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, serial := fetch(t, ca, addr); serial != 7 {
		t.Fatalf("after the renewals: certificate %d, want 7", serial)
	}
}

// A failure that comes back after the files were restored is logged
// again: restoring the files ends the failure.
func TestTLSRepeatedFailureLogged(t *testing.T) {
	ca, certFile, _, addr, log := tlsFixture(t)
	for range 2 {
		if err := os.Rename(certFile, certFile+".away"); err != nil {
			t.Fatal(err)
		}
		fetch(t, ca, addr)
		if err := os.Rename(certFile+".away", certFile); err != nil {
			t.Fatal(err)
		}
		fetch(t, ca, addr)
	}
	if n := strings.Count(log.String(), "TLS certificate not reloaded"); n != 2 {
		t.Errorf("two outages logged %d times, want 2:\n%s", n, log)
	}
}

// A pair whose certificate has expired, or is not valid yet, loads (the
// operator may be about to renew it) but is logged as one clients will
// refuse; one near its end is logged as expiring soon; a valid one is
// not logged.
func TestLoadKeyPairWarnsOfValidity(t *testing.T) {
	const invalid, soon = "TLS certificate is not valid now", "TLS certificate expires soon"
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	now := time.Now()
	day := 24 * time.Hour
	for name, c := range map[string]struct {
		from, to time.Time
		warn     string
	}{
		"expired":         {now.Add(-48 * time.Hour), now.Add(-time.Hour), invalid},
		"not yet":         {now.Add(time.Hour), now.Add(48 * time.Hour), invalid},
		"valid now":       {now.Add(-time.Hour), now.Add(time.Hour), ""},
		"90 days, 6 left": {now.Add(-84 * day), now.Add(6 * day), soon},
		"90 days, 8 left": {now.Add(-82 * day), now.Add(8 * day), ""},
		"6 days, 1 left":  {now.Add(-5 * day), now.Add(day), soon},
		"6 days, 2 left":  {now.Add(-4 * day), now.Add(2 * day), ""},
	} {
		certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		ca.WriteServerPairValid(t, certFile, keyFile, 2, c.from, c.to)
		log := &syncbuf.Buffer{}
		if _, err := LoadKeyPair(certFile, keyFile, slog.New(slog.NewTextHandler(log, nil))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range []string{invalid, soon} {
			if got := strings.Contains(log.String(), w); got != (w == c.warn) {
				t.Errorf("%s: logged %q %v, want %v; log:\n%s", name, w, got, w == c.warn, log)
			}
		}
	}
}

// While a pair is served, its end coming near and then passing are
// logged at a handshake, each at most once every validityLogEvery; a
// renewed pair is logged anew.
func TestGetCertificateWarnsOfExpiry(t *testing.T) {
	const invalid, soon = "TLS certificate is not valid now", "TLS certificate expires soon"
	ca := tlstest.NewCA(t)
	certFile, keyFile := filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
	start := time.Now().Truncate(time.Second)
	ca.WriteServerPairValid(t, certFile, keyFile, 2, start.Add(-time.Hour), start.Add(99*time.Hour))
	log := &syncbuf.Buffer{}
	kp, err := LoadKeyPair(certFile, keyFile, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := start
	kp.now = func() time.Time { return clock }
	step := func(at time.Duration, wantInvalid, wantSoon int) {
		t.Helper()
		clock = start.Add(at)
		if _, err := kp.GetCertificate(nil); err != nil {
			t.Fatal(err)
		}
		if n, m := strings.Count(log.String(), invalid), strings.Count(log.String(), soon); n != wantInvalid || m != wantSoon {
			t.Fatalf("at %v: %d not-valid and %d expires-soon warnings, want %d and %d; log:\n%s",
				at, n, m, wantInvalid, wantSoon, log)
		}
	}
	step(0, 0, 0)
	step(73*time.Hour, 0, 0)               // 26 h left of 100: more than a quarter
	step(76*time.Hour, 0, 1)               // 23 h left
	step(76*time.Hour+time.Minute, 0, 1)   // logged a minute ago
	step(82*time.Hour-time.Second, 0, 1)   // not yet six hours later
	step(82*time.Hour, 0, 2)               // six hours later
	step(99*time.Hour+time.Second, 1, 2)   // ended: a new warning, even within six hours
	step(99*time.Hour+2*time.Second, 1, 2) // once
	// A renewal that is itself near its end (21 h left of 100) is news.
	replaceValid(t, ca, certFile, keyFile, 3, start.Add(time.Hour), start.Add(20*time.Hour), start.Add(120*time.Hour))
	step(99*time.Hour+3*time.Second, 1, 3)
	if !strings.Contains(log.String(), "TLS certificate reloaded") {
		t.Fatalf("the renewal was not loaded; log:\n%s", log)
	}
}

// Watch logs a certificate near its end with no handshake at all, and
// stops when its context ends.
func TestKeyPairWatch(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
	start := time.Now()
	ca.WriteServerPairValid(t, certFile, keyFile, 2, start.Add(-time.Hour), start.Add(99*time.Hour))
	log := &syncbuf.Buffer{}
	kp, err := LoadKeyPair(certFile, keyFile, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	kp.now = func() time.Time { return start.Add(80 * time.Hour) } // 19 h left of 100
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { kp.Watch(ctx, time.Millisecond); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "TLS certificate expires soon"); {
		if time.Now().After(deadline) {
			t.Fatalf("Watch logged no warning in 10 s; log:\n%s", log)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}
