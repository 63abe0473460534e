package functions_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/transcript.golden from the first backend")

// step is one line of the scripted session: a request, or (when advance is
// set) moving the store's clock.
type step struct {
	title   string
	q       req
	advance time.Duration
}

// session is a scripted walk through every endpoint and most error rows.
var session = []step{
	{title: "health needs no token", q: withAuth(get("/health"), "-")},
	{title: "a new account holds nothing", q: get("/locks")},
	{title: "acquire with defaults and a generated lease id", q: post("/locks/db/acquire", "")},
	{title: "acquire with every field", q: post("/locks/job/acquire", `{"ttl_seconds":30,"metadata":"host-7","lease_id":"worker-1"}`)},
	{title: "another lease finds it held", q: post("/locks/job/acquire", `{"lease_id":"worker-2"}`)},
	{title: "another account has its own namespace", q: withAuth(post("/locks/job/acquire", `{"lease_id":"worker-1"}`), "bob")},
	{title: "a retried acquire keeps lease and token", q: post("/locks/job/acquire", `{"lease_id":"worker-1","ttl_seconds":45}`)},
	{title: "status of a held lock", q: get("/locks/job")},
	{title: "list, sorted by name", q: get("/locks")},
	{title: "renew", q: post("/locks/job/renew", `{"lease_id":"worker-1","ttl_seconds":90}`)},
	{title: "renew by a non-holder", q: post("/locks/job/renew", `{"lease_id":"worker-2"}`)},
	{title: "release by a non-holder", q: post("/locks/job/release", `{"lease_id":"worker-2"}`)},
	{title: "release", q: post("/locks/job/release", `{"lease_id":"worker-1"}`)},
	{title: "status of a free lock", q: get("/locks/job")},
	{title: "the next holder gets a greater token", q: post("/locks/job/acquire", `{"lease_id":"worker-2"}`)},
	{title: "a short lease", q: post("/locks/exp/acquire", `{"lease_id":"short","ttl_seconds":1}`)},
	{title: "time passes", advance: 2 * time.Second},
	{title: "the expired lock is free", q: get("/locks/exp")},
	{title: "an expired lease is not renewed", q: post("/locks/exp/renew", `{"lease_id":"short"}`)},
	{title: "an expired lease is not released", q: post("/locks/exp/release", `{"lease_id":"short"}`)},
	{title: "an expired lock is acquired anew", q: post("/locks/exp/acquire", `{"lease_id":"long","metadata":"<b>&"}`)},
	{title: "metadata with a lone surrogate escape is refused", q: post("/locks/meta/acquire", `{"lease_id":"m","metadata":"a\ud800"}`)},
	{title: "metadata keeps NUL, escapes, surrogate pairs and non-ASCII", q: post("/locks/meta/acquire", `{"lease_id":"m","metadata":"a\u0000b\"c\\d\u00e9\n\ud83d\ude00é"}`)},
	{title: "and reads back the same", q: get("/locks/meta")},
	{title: "list after expiry", q: get("/locks")},
	{title: "bob's list", q: withAuth(get("/locks"), "bob")},
	{title: "bad name", q: post("/locks/no_underscores/acquire", "")},
	{title: "bad JSON", q: post("/locks/job/acquire", `{"ttl_seconds":`)},
	{title: "unknown field", q: post("/locks/job/acquire", `{"ttl":5}`)},
	{title: "duplicate field", q: post("/locks/job/acquire", `{"lease_id":"a","lease_id":"b"}`)},
	{title: "trailing data", q: post("/locks/job/acquire", `{}{}`)},
	{title: "ttl as a string", q: post("/locks/job/acquire", `{"ttl_seconds":"60"}`)},
	{title: "ttl out of range", q: post("/locks/job/acquire", `{"ttl_seconds":3601}`)},
	{title: "metadata too long", q: post("/locks/job/acquire", `{"metadata":"`+strings.Repeat("m", 1025)+`"}`)},
	{title: "release without a lease id", q: post("/locks/job/release", "")},
	{title: "body too large", q: post("/locks/job/acquire", strings.Repeat(" ", 16<<10+1))},
	{title: "no token", q: withAuth(get("/locks"), "-")},
	{title: "unknown token", q: withAuth(get("/locks"), "raw:Bearer "+validToken)},
	{title: "bad token and bad body: auth first", q: withAuth(post("/locks/job/acquire", "{"), "raw:Bearer x")},
	{title: "unknown route", q: get("/lock")},
	{title: "wrong method", q: req{method: "DELETE", path: "/locks/job"}},
	{title: "a well-formed request id is echoed", q: req{method: "GET", path: "/locks/none", header: map[string]string{"X-Request-Id": "trace-42"}}},
	{title: "rotate the token", q: post("/auth/token/rotate", "")},
	{title: "the old token is refused", q: withAuth(get("/locks"), "alice-old")},
	{title: "the new token works", q: get("/locks/exp")},
}

// transcriptHeaders are the response headers a transcript shows.
var transcriptHeaders = []string{"Allow", "Cache-Control", "Content-Type", "Retry-After", "WWW-Authenticate", "X-Content-Type-Options", "X-Request-Id"}

// runSession plays session on a fresh env of b and returns the normalised
// transcript.
func runSession(t *testing.T, b backend) string {
	e := newEnv(t, b)
	fences := newFenceNamer(t, e.clockMicros)
	var out strings.Builder
	for _, s := range session {
		fmt.Fprintf(&out, "### %s\n", s.title)
		if s.advance != 0 {
			e.advance(s.advance)
			fmt.Fprintf(&out, "(clock +%v)\n\n", s.advance)
			continue
		}
		q := s.q
		fmt.Fprintf(&out, "> %s %s\n", q.method, q.path)
		switch who := q.auth; {
		case who == "":
			fmt.Fprintf(&out, "> Authorization: Bearer <alice>\n")
		case who == "-":
		case strings.HasPrefix(who, "raw:"):
			fmt.Fprintf(&out, "> Authorization: %s\n", strings.TrimPrefix(who, "raw:"))
		default:
			fmt.Fprintf(&out, "> Authorization: Bearer <%s>\n", who)
		}
		for k, v := range q.header {
			fmt.Fprintf(&out, "> %s: %s\n", k, v)
		}
		if q.body != "" {
			body := q.body
			if len(body) > 200 {
				body = fmt.Sprintf("%q... (%d bytes)", body[:40], len(body))
			}
			fmt.Fprintf(&out, "> %s\n", body)
		}
		w := e.do(t, q)
		fmt.Fprintf(&out, "< %d\n", w.Code)
		h := w.Result().Header
		for _, k := range transcriptHeaders {
			if v := h.Get(k); v != "" {
				fmt.Fprintf(&out, "< %s: %s\n", k, v)
			}
		}
		fmt.Fprintf(&out, "< %s\n", fences.name(q.auth, w.Body.String()))
		if q.path == "/auth/token/rotate" && w.Code == 200 {
			tok, _ := decode(t, w)["token"].(string)
			e.tokens["alice-old"], e.tokens["alice"] = e.tokens["alice"], tok
		}
	}
	text := strings.ReplaceAll(out.String(), `"store":"`+storeKind(b.name)+`"`, `"store":"<STORE>"`)
	return newNormalizer().normalize(text)
}

// TestTranscript plays one scripted session over every backend and checks
// that the normalised transcripts are identical to each other and to
// testdata/transcript.golden (rewrite it with -update).
func TestTranscript(t *testing.T) {
	golden := filepath.Join("testdata", "transcript.golden")
	var first string
	for i, b := range backends {
		got := runSession(t, b)
		if i == 0 {
			first = got
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		} else if got != first {
			t.Errorf("transcript of %s differs from %s:\n%s", b.name, backends[0].name, diff(first, got))
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestTranscript -update to create it)", err)
	}
	if first != string(want) {
		t.Errorf("transcript differs from %s (rerun with -update if the change is intended):\n%s", golden, diff(string(want), first))
	}
}

// diff shows the first differing line of two transcripts with context.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			from := max(0, i-3)
			ctx := strings.Join(wl[from:i], "\n")
			return fmt.Sprintf("line %d:\n%s\n-want %s\n+got  %s", i+1, ctx, w, g)
		}
	}
	return "(no line differs)"
}
