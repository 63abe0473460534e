package oauth_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/internal/browsertest"
)

// TestBrowserSiblingCannotPlantStateCookie is login CSRF by cookie
// tossing, against an https deployment under a path prefix (an API
// Gateway stage, or https://example.com/locks): an attacker who controls a
// sibling subdomain (evil.octostore.test) starts a sign-in of their own,
// stops before the callback, plants their signed state cookie in the
// victim's browser with Domain=octostore.test and sends the victim to the
// callback with their code and state. The victim must not end up signed in
// to the attacker's account (with a token the attacker's GitHub login owns,
// into which the victim would then put their locks and metadata). A
// "__Secure-" cookie may carry a Domain attribute, so only "__Host-" keeps
// such a cookie out. The victim's own sign-in at the same URL still works.
func TestBrowserSiblingCannotPlantStateCookie(t *testing.T) {
	const suffix = "octostore.test"
	bctx := browsertest.NewContext(t,
		chromedp.Flag("host-resolver-rules", "MAP *."+suffix+" 127.0.0.1"),
		chromedp.Flag("proxy-bypass-list", "*."+suffix),
		chromedp.Flag("ignore-certificate-errors", true),
	)
	store := sqliteBacking(t).open(t)
	gh := newFakeGitHub(t)

	// The service, over https, under the path prefix /prod.
	srv := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	public := "https://locks." + suffix + ":" + port + "/prod"
	flow, err := oauth.New(oauth.Config{
		ClientID: gh.clientID, ClientSecret: gh.clientSecret, PublicURL: public,
		StateSecret: testSecret, BaseURL: gh.srv.URL, APIURL: gh.srv.URL,
	}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+oauth.StartPath, flow.Start)
	mux.HandleFunc("GET "+oauth.CallbackPath, flow.Callback)
	srv.Config.Handler = withRequestID(http.StripPrefix("/prod", mux))
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The attacker's own sign-in, with a client that reaches the names
	// above on loopback and stops at each redirect.
	attacker := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, p, _ := net.SplitHostPort(addr)
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	gh.setUser(666, "mallory")
	resp, err := attacker.Get(public + oauth.StartPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) != 1 {
		t.Fatalf("start set cookies %v, want one", resp.Cookies())
	}
	stateCookie := resp.Cookies()[0]
	resp, err = attacker.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	attackerCallback := resp.Header.Get("Location")
	if !strings.HasPrefix(attackerCallback, public+oauth.CallbackPath+"?") {
		t.Fatalf("GitHub sent the attacker to %q", attackerCallback)
	}

	// The sibling subdomain plants the attacker's cookie for the parent
	// domain, under the name and path the service uses, and redirects the
	// victim to the callback with the attacker's code and state.
	evil := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", stateCookie.Name+"="+stateCookie.Value+"; Domain="+suffix+
			"; Path="+stateCookie.Path+"; Secure; HttpOnly; SameSite=Lax; Max-Age=600")
		http.Redirect(w, r, attackerCallback, http.StatusFound)
	}))
	evil.StartTLS()
	t.Cleanup(evil.Close)
	_, evilPort, _ := net.SplitHostPort(evil.Listener.Addr().String())

	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate("https://evil."+suffix+":"+evilPort+"/"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	); err != nil {
		t.Fatalf("victim's visit: %v", err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if tokenRE.MatchString(body) || !strings.Contains(body, "invalid_oauth_state") {
		t.Errorf("a cookie planted by a sibling subdomain signed the victim in to the attacker's account (state cookie %s, Path=%s):\n%s",
			stateCookie.Name, stateCookie.Path, body)
	}

	// The victim's own sign-in at the same URL works.
	gh.setUser(42, "victim")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(public+oauth.StartPath),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	); err != nil {
		t.Fatalf("victim's sign-in: %v", err)
	}
	body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if !tokenRE.MatchString(body) || !strings.Contains(body, "Signed in as victim") {
		t.Errorf("the victim's own sign-in over https under /prod failed:\n%s", body)
	}
	if u, _ := url.Parse(public); u.Path != "/prod" {
		t.Fatalf("public URL %s", public)
	}
}
