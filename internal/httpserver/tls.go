package httpserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// KeyPair is a TLS certificate chain and its private key, read from two
// PEM files, for a server's tls.Config.GetCertificate. It reads the files
// again at the first full handshake after either has changed (another
// file, or another size, modification time or, on Linux, change time,
// following symlinks), so a renewed certificate is served without a
// restart. A pair that does not load then (a renewal written halfway, a
// key that does not match the certificate, a file gone) is logged once
// and the last pair that loaded is served meanwhile; it is tried again
// when the files change, or a second later. One handshake at a time
// looks at the files: the others present the current pair meanwhile, so a
// slow file system delays no handshake but that one. A certificate that
// is not valid now, or that ends within a week (a quarter of its
// lifetime, when that is shorter), is logged as a warning when loaded and
// again every six hours while it is served. A KeyPair is safe for
// concurrent use.
type KeyPair struct {
	certFile, keyFile string
	logger            *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
	now               func() time.Time // the clock, replaced in tests

	mu      sync.Mutex // held by the handshake that looks at the files
	loaded  stamps     // of the files cert was read from
	failure failure    // the last reload failure, logged once
	warned  struct {   // the last pair logged by warnValidity, and when
		cert *tls.Certificate
		at   time.Time
	}
}

// stamps identify a version of the two files: the file (device and
// inode), its size, its modification time and, on Linux, its change time.
// Nil when a file is missing.
type stamps struct{ cert, key os.FileInfo }

func (a stamps) same(b stamps) bool {
	return sameVersion(a.cert, b.cert) && sameVersion(a.key, b.key)
}

func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) &&
		changeTime(a).Equal(changeTime(b))
}

// failure is a reload that failed: the files' stamps and the error, and
// when it was tried.
type failure struct {
	files stamps
	err   string
	at    time.Time
}

func (a failure) same(b failure) bool { return a.err == b.err && a.files.same(b.files) }

// LoadKeyPair reads certFile (the certificate, then any intermediates)
// and keyFile (its private key), both PEM. It returns an error naming the
// file when either cannot be read or they do not make a pair. logger
// receives GetCertificate's reloads and reload failures (nil:
// slog.Default()).
func LoadKeyPair(certFile, keyFile string, logger *slog.Logger) (*KeyPair, error) {
	if logger == nil {
		logger = slog.Default()
	}
	kp := &KeyPair{certFile: certFile, keyFile: keyFile, logger: logger, now: time.Now}
	st, err := kp.stat()
	if err != nil {
		return nil, err
	}
	cert, err := kp.load()
	if err != nil {
		return nil, err
	}
	kp.cert.Store(cert)
	kp.loaded = st
	kp.warnValidity(cert)
	return kp, nil
}

// GetCertificate returns the pair to present, reading the files again
// first when they have changed since the pair was read. It never fails
// once LoadKeyPair has succeeded: when the files cannot be read or do not
// make a pair, it returns the last pair that did, and logs why once for
// each version of the files. A pair that is not valid now, or near its
// end, is logged as LoadKeyPair does, again every validityLogEvery while
// it is served.
func (kp *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !kp.mu.TryLock() {
		return kp.cert.Load(), nil // another handshake is looking at the files
	}
	defer kp.mu.Unlock()
	cert := kp.current()
	kp.warnValidity(cert)
	return cert, nil
}

// Watch looks at the files and the served certificate every interval
// until ctx ends, as a handshake does (GetCertificate): a renewal is read
// and an expiry logged also while no client makes a full handshake (all
// of them on kept-alive connections, or none at all). It returns when ctx
// ends; run it on its own goroutine.
func (kp *KeyPair) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = kp.GetCertificate(nil) // never fails; it logs what it finds
		}
	}
}

// current returns the pair to present, read again from the files when
// they have changed. kp.mu is held.
func (kp *KeyPair) current() *tls.Certificate {
	st, err := kp.stat()
	if err == nil {
		if st.same(kp.loaded) {
			kp.failure = failure{} // back to the files served: a new failure is news
			return kp.cert.Load()
		}
		if st.same(kp.failure.files) && kp.now().Sub(kp.failure.at) < time.Second {
			return kp.cert.Load() // this version did not load a moment ago
		}
		var cert *tls.Certificate
		if cert, err = kp.load(); err == nil {
			kp.cert.Store(cert)
			kp.loaded, kp.failure = st, failure{}
			attrs := []any{"cert_file", kp.certFile, "key_file", kp.keyFile}
			if leaf := cert.Leaf; leaf != nil { // nil only under GODEBUG x509keypairleaf=0
				attrs = append(attrs, "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
			}
			kp.logger.Info("TLS certificate reloaded", attrs...)
			return cert
		}
	}
	f := failure{st, err.Error(), kp.now()}
	if !f.same(kp.failure) {
		kp.logger.Warn("TLS certificate not reloaded; serving the previous one", "err", err)
	}
	kp.failure = f
	return kp.cert.Load()
}

// validityLogEvery is how often, at most, a served certificate that is
// not valid now or near its end is logged again.
const validityLogEvery = 6 * time.Hour

// renewalOverdue is how long before its end a certificate is logged as
// expiring soon: a week, or a quarter of its lifetime when that is
// shorter (certbot renews a 90-day certificate 30 days before its end;
// a 6-day one would always be within a week).
func renewalOverdue(leaf *x509.Certificate) time.Duration {
	return min(leaf.NotAfter.Sub(leaf.NotBefore)/4, 7*24*time.Hour)
}

// warnValidity logs cert when it is not valid now (clients will refuse
// it) or expires within renewalOverdue, unless it was logged less than
// validityLogEvery ago. kp.mu is held, or kp is not shared yet.
func (kp *KeyPair) warnValidity(cert *tls.Certificate) {
	leaf, now := cert.Leaf, kp.now()
	if leaf == nil || (cert == kp.warned.cert && now.Sub(kp.warned.at) < validityLogEvery) {
		return
	}
	switch left := leaf.NotAfter.Sub(now); {
	case left < 0 || now.Before(leaf.NotBefore):
		kp.logger.Warn("TLS certificate is not valid now; clients will refuse it", "cert_file", kp.certFile,
			"not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	case left < renewalOverdue(leaf):
		kp.logger.Warn("TLS certificate expires soon; renew its files (they are read again without a restart)",
			"cert_file", kp.certFile, "not_after", leaf.NotAfter, "left", left.Round(time.Minute))
	default:
		return
	}
	kp.warned.cert, kp.warned.at = cert, now
}

// stat takes the stamps of both files, before they are read: a change
// made while they are read shows at the next handshake.
func (kp *KeyPair) stat() (stamps, error) {
	c, err := os.Stat(kp.certFile)
	if err != nil {
		return stamps{}, fmt.Errorf("TLS certificate file: %w", err)
	}
	k, err := os.Stat(kp.keyFile)
	if err != nil {
		return stamps{}, fmt.Errorf("TLS key file: %w", err)
	}
	return stamps{c, k}, nil
}

func (kp *KeyPair) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(kp.certFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(kp.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls says what is wrong, not with which files.
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", kp.certFile, kp.keyFile, err)
	}
	return &cert, nil
}

// UseTLS makes srv (from New) serve TLS with kp, to be started with
// srv.ServeTLS(ln, "", ""): TLS 1.2 or later, Go's default cipher suites,
// and HTTP/1.1 only. HTTP/2 is not offered (by ALPN): the limits
// above and their tests are HTTP/1.1's, and Go's HTTP/2 server measured
// about half the request rate of HTTP/1.1 here (BENCHMARKS.md). The TLS
// handshake is bounded by ReadHeaderTimeout, like the headers.
func UseTLS(srv *http.Server, kp *KeyPair) error {
	if kp == nil {
		return errors.New("httpserver: UseTLS without a key pair")
	}
	srv.TLSConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: kp.GetCertificate,
	}
	var p http.Protocols
	p.SetHTTP1(true)
	srv.Protocols = &p
	return nil
}
