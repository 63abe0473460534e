package redisstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestPasswordCutURLsAreRefusedUnquoted: a password whose '/', '?' or '#'
// is not percent-encoded, with nothing or only digits before it, leaves a
// URL that parses with the rest of the password in its path, query or
// fragment. Open must refuse it without quoting it (go-redis quoted it as
// an invalid database number or an unknown option), and RedactedURL must
// not show it.
func TestPasswordCutURLsAreRefusedUnquoted(t *testing.T) {
	const pw = "Sup3rS3cretPw"
	for _, u := range []string{
		"redis://default:2024?" + pw + "@127.0.0.1:1",
		"redis://default:/" + pw + "@127.0.0.1:1",
		"redis://:/" + pw + "@127.0.0.1:1/0",
		"rediss://default:2024#" + pw + "@127.0.0.1:1",
		"REDIS://default:2024?" + pw + "@127.0.0.1:1",
	} {
		if !redisstore.PasswordCut(u) {
			t.Errorf("PasswordCut(%q) = false", u)
		}
		if got := redisstore.RedactedURL(u, "(hidden)"); got != "(hidden)" {
			t.Errorf("RedactedURL(%q) = %q, want the placeholder", u, got)
		}
		for _, cluster := range []bool{false, true} {
			_, err := redisstore.Open(context.Background(), redisstore.Config{URL: u, Cluster: cluster})
			if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "percent-encode") {
				t.Errorf("Open(%q, cluster %v): %v; want an error that says to percent-encode and does not quote the password", u, cluster, err)
			}
		}
	}
	for _, u := range []string{
		"redis://default:" + pw + "@127.0.0.1:6379/0",
		"redis://default:" + pw + "@127.0.0.1:6379?addr=127.0.0.1:6380&protocol=3",
		"redis://default:a%2Fb%3Fc%23d@127.0.0.1:6379/1",
		"unix:///run/redis-server@main/redis.sock?db=2",
		"redis://127.0.0.1:6379",
	} {
		if redisstore.PasswordCut(u) {
			t.Errorf("PasswordCut(%q) = true for a well-formed URL", u)
		}
		if got := redisstore.RedactedURL(u, "(hidden)"); got == "(hidden)" || strings.Contains(got, pw) {
			t.Errorf("RedactedURL(%q) = %q, want the URL with its password hidden", u, got)
		}
	}
}
