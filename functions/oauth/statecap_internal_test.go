package oauth

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCheckStateExaminesFewCookies: a callback stuffed with state cookies
// costs an HMAC for only the first few of them, not one per cookie.
func TestCheckStateExaminesFewCookies(t *testing.T) {
	f := &Flow{secret: []byte(strings.Repeat("k", 32)), cookieName: StateCookie, now: time.Now}
	good := f.stateCookie("st").Value
	req := func(planted int) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "/auth/github/callback?state=st", nil)
		var parts []string
		for i := 0; i < planted; i++ {
			parts = append(parts, StateCookie+"=st.9999999999.bogus")
		}
		parts = append(parts, StateCookie+"="+good)
		r.Header.Set("Cookie", strings.Join(parts, "; "))
		return r
	}
	if ferr := f.checkState(req(1), "st"); ferr != nil {
		t.Fatalf("genuine cookie after one planted one refused: %s", ferr.log)
	}
	if ferr := f.checkState(req(1000), "st"); ferr == nil {
		t.Fatal("the 1001st state cookie was examined: every cookie of the request costs an HMAC")
	}
}
