package apidocs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// testApp is the whole API as deployed: functions.New over a real SQLite
// store, with the docs routes.
type testApp struct {
	// handler is the whole API: api, with the docs routes mounted beside
	// it while api does not serve them itself.
	handler http.Handler
	// api is functions.New as it is.
	api     http.Handler
	store   *faultyStore
	account lockcore.Account
	token   string
	// wired says whether functions serves the docs routes itself. Until it
	// does, newApp mounts them beside it (see docsBeside).
	wired bool
}

const testVersion = "v0.0.0-test"

func newApp(t testing.TB) *testApp {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "octostore.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct, _, err := st.EnsureAccount(ctx, "tester")
	if err != nil {
		t.Fatal(err)
	}
	token, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		t.Fatal(err)
	}
	fs := &faultyStore{Store: st}
	h := functions.New(functions.Deps{Store: fs, StoreName: "sqlite", Version: testVersion, OpTimeout: 30 * time.Second})
	app := &testApp{handler: h, api: h, store: fs, account: acct, token: token}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	app.wired = rec.Code == http.StatusOK
	if !app.wired {
		t.Logf("functions.New does not serve GET /openapi.json yet (%d): the docs routes are mounted beside it for this test", rec.Code)
		app.handler = docsBeside(h)
	}
	return app
}

// docsBeside serves apidocs.Routes for GET and HEAD and everything else with
// api, adding the headers that functions' middleware puts on every answer.
// It stands in for the one-line registration in functions until that is
// made, so that the docs can be tested with the real API.
func docsBeside(api http.Handler) http.Handler {
	docs := http.NewServeMux()
	for _, rt := range apidocs.Routes(testVersion) {
		docs.Handle(rt.Pattern, rt.Handler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := docs.Handler(r); pattern != "" {
			var id [16]byte
			rand.Read(id[:])
			w.Header().Set("X-Request-Id", hex.EncodeToString(id[:]))
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			docs.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// request builds a request with the app's token when auth is set.
func (a *testApp) request(method, path, body string, auth bool) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth {
		r.Header.Set("Authorization", "Bearer "+a.token)
	}
	return r
}

// Fault modes of faultyStore.
const (
	storeOK int32 = iota
	storeUnavailable
	storeBroken
)

// faultyStore is a Store that can be made to fail: unavailable (every call
// returns an error wrapping ErrUnavailable, as a store that is down does) or
// broken (every call returns an error the handlers cannot know, which must
// be a 500).
type faultyStore struct {
	lockcore.Store
	mode atomic.Int32
}

func (f *faultyStore) fail() error {
	switch f.mode.Load() {
	case storeUnavailable:
		return fmt.Errorf("test: the store is down: %w", lockcore.ErrUnavailable)
	case storeBroken:
		return errors.New("test: the store broke in an unexpected way")
	}
	return nil
}

func (f *faultyStore) Acquire(ctx context.Context, acct, name string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := f.fail(); err != nil {
		return lockcore.AcquireResult{}, err
	}
	return f.Store.Acquire(ctx, acct, name, o)
}

func (f *faultyStore) Renew(ctx context.Context, acct, name, lease string, ttl time.Duration) (lockcore.Lease, error) {
	if err := f.fail(); err != nil {
		return lockcore.Lease{}, err
	}
	return f.Store.Renew(ctx, acct, name, lease, ttl)
}

func (f *faultyStore) Release(ctx context.Context, acct, name, lease string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Release(ctx, acct, name, lease)
}

func (f *faultyStore) Get(ctx context.Context, acct, name string) (lockcore.LockState, error) {
	if err := f.fail(); err != nil {
		return lockcore.LockState{}, err
	}
	return f.Store.Get(ctx, acct, name)
}

func (f *faultyStore) List(ctx context.Context, acct string) ([]lockcore.Lease, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, acct)
}

func (f *faultyStore) RotateToken(ctx context.Context, old, new lockcore.TokenHash) (lockcore.Account, error) {
	if err := f.fail(); err != nil {
		return lockcore.Account{}, err
	}
	return f.Store.RotateToken(ctx, old, new)
}

func (f *faultyStore) Ping(ctx context.Context) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

func (f *faultyStore) UpsertGitHubAccount(ctx context.Context, githubID int64, login string) (lockcore.Account, error) {
	if err := f.fail(); err != nil {
		return lockcore.Account{}, err
	}
	return f.Store.UpsertGitHubAccount(ctx, githubID, login)
}
