package scripts_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/octostore/octostore/scripts"
)

// exported maps each .lua file to the variable that embeds it.
var exported = map[string]string{
	"acquire.lua": scripts.Acquire,
	"renew.lua":   scripts.Renew,
	"release.lua": scripts.Release,
	"get.lua":     scripts.Get,
	"list.lua":    scripts.List,
	"account.lua": scripts.Account,
	"rotate.lua":  scripts.Rotate,
	"revoke.lua":  scripts.Revoke,
	"restore.lua": scripts.Restore,
}

var argRef = regexp.MustCompile(`(KEYS|ARGV)\[(\d+)\]`)

// TestScripts checks that every .lua file is exported unchanged and that
// its header comment documents every KEYS[i] and ARGV[i] the code uses,
// and that the code never builds key names itself from the prefix.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("glob *.lua: %v, %v", files, err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src, ok := exported[f]
		if !ok {
			t.Errorf("%s is not exported by package scripts", f)
			continue
		}
		if src != string(body) {
			t.Errorf("%s: exported text differs from the file", f)
		}
		if !strings.HasPrefix(src, "-- "+f+": ") {
			t.Errorf("%s: want a header starting %q", f, "-- "+f+": ")
		}
		var header, code strings.Builder
		for _, line := range strings.Split(src, "\n") {
			if strings.HasPrefix(line, "--") {
				header.WriteString(line + "\n")
			} else {
				code.WriteString(line + "\n")
			}
		}
		if !strings.Contains(header.String(), "KEYS[1]") {
			t.Errorf("%s: header documents no KEYS", f)
		}
		for _, m := range argRef.FindAllString(code.String(), -1) {
			if !strings.Contains(header.String(), m) {
				t.Errorf("%s: the code uses %s but the header does not document it", f, m)
			}
		}
		if strings.Contains(code.String(), "{a:") || strings.Contains(code.String(), "..") {
			t.Errorf("%s: the code builds strings (key names?) itself; every key must come through KEYS", f)
		}
	}
	// The lock writes take the token mirror as an optional key after their
	// own (the revocation mark may follow it), check it before touching the
	// lock, and document the status that refuses an unproved token.
	status := strconv.Itoa(scripts.NotProved)
	for f, key := range map[string]string{"acquire.lua": "KEYS[4]", "renew.lua": "KEYS[3]", "release.lua": "KEYS[3]"} {
		var header strings.Builder
		for _, line := range strings.Split(exported[f], "\n") {
			if strings.HasPrefix(line, "--") {
				header.WriteString(line + "\n")
			}
		}
		if !strings.Contains(header.String(), "-- "+key+" token mirror") || !strings.Contains(header.String(), "OPTIONAL") {
			t.Errorf("%s: header must document %s as the optional token mirror key", f, key)
		}
		if !strings.Contains(header.String(), status) || !strings.Contains(header.String(), "not proved") {
			t.Errorf("%s: header must document the status %s (token not proved)", f, status)
		}
		if !strings.Contains(exported[f], "if "+key+" and redis.call('EXISTS', "+key+") ~= 1 then") {
			t.Errorf("%s: want the mirror check on %s", f, key)
		}
	}
	for f := range exported {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("exported script %s has no file: %v", f, err)
		}
	}
}
