package browsertest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/octostore/octostore/internal/browsertest"
)

func TestNewContextLoadsALoopbackPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>hello</title><p id="p">from ` + r.URL.Path + `</p>`))
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(browsertest.NewContext(t), 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/x")); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#p")))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if title != "hello" || text != "from /x" {
		t.Errorf("title %q, text %q", title, text)
	}
	dir := browsertest.ArtifactDir(t)
	path := filepath.Join(dir, "browsertest.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Errorf("screenshot is not a PNG (%d bytes)", len(png))
	}
	t.Logf("screenshot: %s", path)
}

func TestArtifactDirHonoursTheEnvironment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	t.Setenv(browsertest.ArtifactsEnv, dir)
	if got := browsertest.ArtifactDir(t); got != dir {
		t.Fatalf("ArtifactDir = %q, want %q", got, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s was not created: %v", dir, err)
	}
}
