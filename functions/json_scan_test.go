package functions

// Tests of decodeBody's hand-written scanner against the encoding/json
// Decoder.Token walk it replaced, kept here as the reference.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/octostore/octostore/lockcore"
)

// referenceDecode is decodeBody as it was before the scanner: it walks the
// body with encoding/json's Decoder.Token (UseNumber). It is the oracle of
// the differential tests below; do not change it to match decodeBody. It
// builds its error sentences with decodeBody's own helpers (quoteKey,
// utf8Error, ttlKindError), so that a reworded sentence changes both: the
// tests compare the walks, not the wording.
func referenceDecode(s *server, body []byte, allowed fieldSet, out *requestBody) error {
	empty := true
	for _, c := range body {
		if !isJSONSpace(c) {
			empty = false
			break
		}
	}
	if empty {
		return nil
	}
	if !utf8.Valid(body) {
		return utf8Error(body)
	}
	if !json.Valid(body) {
		return syntaxError(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, _ := dec.Token()
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return newError(errInvalidJSON, "request body must be a JSON object")
	}
	var seen fieldSet
	for dec.More() {
		keyTok, _ := dec.Token()
		key, _ := keyTok.(string)
		var bit fieldSet
		for _, fn := range fieldNames {
			if fn.name == key {
				bit = fn.bit
			}
		}
		if bit == 0 || allowed&bit == 0 {
			if allowed == 0 {
				return newError(errInvalidJSON, fmt.Sprintf("unknown field %s in request body: this endpoint takes no fields", quoteKey(key)))
			}
			return newError(errInvalidJSON, fmt.Sprintf("unknown field %s in request body (allowed: %s)", quoteKey(key), allowed.list()))
		}
		if seen&bit != 0 {
			return newError(errInvalidJSON, fmt.Sprintf("duplicate field %s in request body", quoteKey(key)))
		}
		seen |= bit
		val, _ := dec.Token()
		if err := referenceSetField(s, bit, val, out); err != nil {
			return err
		}
	}
	return nil
}

// referenceSetField is setField as it was, taking a Decoder token.
func referenceSetField(s *server, bit fieldSet, val json.Token, out *requestBody) error {
	switch bit {
	case fieldTTL:
		num, ok := val.(json.Number)
		if !ok {
			return s.ttlKindError(tokenKind(val))
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			max := int64(s.limits.MaxTTL / time.Second)
			lit := string(num)
			if len(lit) > 32 {
				lit = lit[:32] + "..."
			}
			return &lockcore.InputError{Kind: lockcore.ErrInvalidTTL, Msg: fmt.Sprintf("ttl_seconds must be an integer from 1 to %d (got %s)", max, lit)}
		}
		ttl, err := s.limits.TTL(&n)
		if err != nil {
			return err
		}
		out.ttl = ttl
	case fieldMetadata:
		m, ok := val.(string)
		if !ok {
			return &lockcore.InputError{Kind: lockcore.ErrInvalidMetadata, Msg: "metadata must be a string (got " + tokenKind(val) + ")"}
		}
		if err := s.limits.ValidateMetadata(m); err != nil {
			return err
		}
		out.metadata, out.hasMetadata = m, true
	case fieldLeaseID:
		id, ok := val.(string)
		if !ok {
			return &lockcore.InputError{Kind: lockcore.ErrInvalidLeaseID, Msg: "lease_id must be a string (got " + tokenKind(val) + ")"}
		}
		if err := lockcore.ValidateLeaseID(id); err != nil {
			return err
		}
		out.leaseID, out.hasLeaseID = id, true
	}
	return nil
}

// decodeOutcome is everything a decode produces that a caller can see.
type decodeOutcome struct {
	body    requestBody
	errType string
	kind    error
	msg     string
	text    string
}

func outcome(body requestBody, err error) decodeOutcome {
	o := decodeOutcome{body: body}
	if err == nil {
		return o
	}
	o.errType, o.text = fmt.Sprintf("%T", err), err.Error()
	switch e := err.(type) {
	case *handlerError:
		o.kind, o.msg = e.Kind, e.Msg
		if e.Detail != nil {
			o.text += " (with detail)"
		}
	case *lockcore.InputError:
		o.kind, o.msg = e.Kind, e.Msg
	}
	return o
}

// scanServers are the servers the differential tests decode with: the
// contract's limits and tight ones, so that every rule can fail.
var scanServers = []*server{
	{limits: lockcore.DefaultLimits},
	{limits: lockcore.Limits{MaxTTL: 2 * time.Second, DefaultTTL: time.Second, MaxMetadataBytes: 3, MaxHeldLocks: 1}},
}

// checkSameDecode decodes body with decodeBody and referenceDecode on every
// server and every allowed field set, and fails on any difference.
func checkSameDecode(t *testing.T, body []byte) {
	t.Helper()
	for _, s := range scanServers {
		for allowed := fieldSet(0); allowed <= allFields; allowed++ {
			checkSameDecodeOne(t, s, body, allowed)
		}
	}
}

const allFields = fieldTTL | fieldMetadata | fieldLeaseID

// checkSameDecodeOne decodes body with decodeBody and referenceDecode on s
// with allowed, and fails on any difference.
func checkSameDecodeOne(t *testing.T, s *server, body []byte, allowed fieldSet) {
	t.Helper()
	got := requestBody{ttl: s.limits.DefaultTTL}
	want := got
	gotErr := s.decodeBody(body, allowed, &got)
	wantErr := referenceDecode(s, body, allowed, &want)
	if g, w := outcome(got, gotErr), outcome(want, wantErr); g != w {
		t.Fatalf("body %q, allowed %q, limits %+v:\n got %+v\nwant %+v", body, allowed.list(), s.limits, g, w)
	}
}

// scanKeys are spellings of keys: the three fields plainly, escaped in
// several ways, and near misses.
var scanKeys = []string{
	`"ttl_seconds"`, `"metadata"`, `"lease_id"`,
	`"ttl\u005fseconds"`, `"\u0074tl_seconds"`, `"\u0074\u0074\u006c\u005f\u0073\u0065\u0063\u006f\u006e\u0064\u0073"`,
	`"met\u0061data"`, `"lease\u005Fid"`, `"\u006cease_id"`, `"lease\/id"`,
	`"TTL_SECONDS"`, `"ttl"`, `"ttl_seconds "`, `" ttl_seconds"`, `"ttl_seconds\u0000"`, `"ttl_seconds\\"`,
	`""`, `"x"`, `"é"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud83d"`, `"lease_id\""`, `"}"`, `","`, `":"`,
	`"` + strings.Repeat("k", 70) + `"`, `"` + strings.Repeat("é", 40) + `"`, `"` + strings.Repeat("a", 63) + `é"`,
	`"` + strings.Repeat("\\u0041", 70) + `"`,
}

// scanValues are values of every JSON type, in many spellings.
var scanValues = []string{
	// numbers
	`0`, `1`, `60`, `-1`, `-0`, `2`, `3`, `3600`, `3601`, `1e3`, `1E3`, `1e+3`, `1e-3`, `1.0`, `1.5`, `0.0`, `-0.0`, `0e0`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
	`18446744073709551616`, `1e400`, `-1e400`, `99999999999999999999999999999999999999`,
	`123456789012345678901234567890123456789.5e+10`, `0.000000000000000000000000000000000000001`,
	// strings
	`""`, `"a"`, `"60"`, `"abc"`, `"abcd"`, `"L1"`, `"0123456789abcdef0123456789abcdef"`, `"a b"`, `"a-b_c"`, `"a.b"`,
	`"é"`, `"éé"`, `"😀"`, "\"\u2028\u2029\"", `"\u00e9"`, `"\u0041"`, `"\u0041BC"`, `"\u0000"`, `"\u001f"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `"\ud83dx"`, `"\ud83d\ud83d"`, `"\ude00\ud83d"`,
	`"\ud800\udc00"`, `"\udbff\udfff"`, `"\uDBFF\uDFFF"`, `"\uFFFF"`, `"\uFEFF"`, `"\ufffd"`,
	`"\"\\\/\b\f\n\r\t"`, `"a\\"`, `"\\\\"`, `"\""`, `"\/"`, `"}"`, `"]"`, `","`, `"{"`, `"\\\""`,
	`"` + strings.Repeat("x", 64) + `"`, `"` + strings.Repeat("x", 65) + `"`, `"` + strings.Repeat("é", 512) + `"`,
	`"` + strings.Repeat("é", 513) + `"`, `"` + strings.Repeat(`\u00e9`, 513) + `"`, `"` + strings.Repeat("x", 1024) + `"`,
	// literals
	`null`, `true`, `false`,
	// objects and arrays, nested, with brackets and quotes inside strings
	`{}`, `[]`, `{"a":1}`, `[1,2]`, `[[[]]]`, `[{}]`, `{"a":{"b":[1,"}"]}}`, `["]","\"]","\\"]`, `{"}":"{"}`,
	`{"ttl_seconds":1}`, `[null,true,false,-1.5e3]`, `{ "a" : [ { } ] }`,
}

// scanBodies is the table of whole bodies, beside the generated ones.
var scanBodies = []string{
	"", " ", "\t\n\r ", "{}", " { } ", "{\n}", "\t{\r\n}\t", "[]", "null", "true", "false", "0", "-1", "1e3",
	`"str"`, `""`, `[{}]`, `[{"ttl_seconds":1}]`, "{}x", "{} {}", "{", "}", `{"ttl_seconds":}`, "\xff", "{\"metadata\":\"\xff\"}",
	"\ufeff{}", "{}\x00", `{"ttl_seconds":60}`, `{"lease_id":"0123456789abcdef0123456789abcdef"}`,
	`{"ttl_seconds":1,"ttl_seconds":2}`, `{"ttl_seconds":1,"ttl\u005fseconds":2}`, `{"\u0074tl_seconds":1,"ttl_seconds":2}`,
	`{"lease_id":"L1","l\u0065ase_id":"L1"}`, `{"metadata":"a","metadata":1}`, `{"metadata":1,"metadata":"a"}`,
	`{"ttl_seconds":1,"lease_id":"L1","metadata":"m"}`, `{"ttl_seconds":1,"lease_id":"L1","metadata":"m","x":1}`,
	`{"ttl_seconds":"x","zzz":1}`, `{"zzz":1,"ttl_seconds":"x"}`, `{"ttl_seconds":0,"zzz":1}`,
	` { "ttl_seconds" : 60 , "metadata" : "m" , "lease_id" : "L1" } `,
	"\n{\n\t\"ttl_seconds\"\n:\n60\n,\n\"lease_id\"\r:\r\"L1\"\r}\n",
	`{"ttl_seconds":[` + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + `]}`,
	`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	strings.Repeat(" ", MaxBodyBytes-2) + "{}",
}

// scanWhitespace are the whitespace runs put around tokens.
var scanWhitespace = []string{"", " ", "\n\t\r "}

// generatedBodies returns objects of one and two members built from
// scanKeys and scanValues, with whitespace around every token.
func generatedBodies() []string {
	var out []string
	obj := func(ws string, members ...[2]string) string {
		var b strings.Builder
		b.WriteString(ws + "{" + ws)
		for i, m := range members {
			if i > 0 {
				b.WriteString("," + ws)
			}
			b.WriteString(m[0] + ws + ":" + ws + m[1] + ws)
		}
		b.WriteString("}" + ws)
		return b.String()
	}
	for _, ws := range scanWhitespace {
		for _, k := range scanKeys {
			for _, v := range scanValues {
				out = append(out, obj(ws, [2]string{k, v}))
			}
		}
	}
	// Pairs: every field spelling with every value, then a second member
	// that is a duplicate, another field or an unknown key.
	seconds := []string{`"ttl_seconds"`, `"ttl\u005fseconds"`, `"metadata"`, `"lease_id"`, `"l\u0065ase_id"`, `"x"`}
	for _, k := range scanKeys[:10] {
		for _, v := range scanValues {
			for _, k2 := range seconds {
				for _, v2 := range []string{`1`, `"L1"`, `null`} {
					out = append(out, obj("", [2]string{k, v}, [2]string{k2, v2}))
				}
			}
		}
	}
	return out
}

// TestDecodeBodyMatchesReference checks that decodeBody answers exactly as
// the Decoder.Token walk it replaced on a table of bodies.
func TestDecodeBodyMatchesReference(t *testing.T) {
	n := 0
	for _, b := range append(scanBodies, generatedBodies()...) {
		checkSameDecode(t, []byte(b))
		n++
	}
	t.Logf("%d bodies", n)
}

// TestDecodeBodyScanValues spot-checks decoded values, so that the
// differential test cannot pass with both sides wrong in the same way.
func TestDecodeBodyScanValues(t *testing.T) {
	s := &server{limits: lockcore.DefaultLimits}
	for _, c := range []struct {
		body string
		want requestBody
	}{
		{`{"ttl_seconds":60}`, requestBody{ttl: time.Minute}},
		{` {"ttl\u005fseconds" : 3600 } `, requestBody{ttl: time.Hour}},
		{`{"metadata":"a\"b\\c\u00e9\ud83d\ude00\ud83d"}`, requestBody{ttl: time.Minute, metadata: "a\"b\\cé😀\ufffd", hasMetadata: true}},
		{`{"lease_id":"0123456789abcdef0123456789abcdef","metadata":""}`, requestBody{ttl: time.Minute, leaseID: "0123456789abcdef0123456789abcdef", hasLeaseID: true, hasMetadata: true}},
	} {
		got := requestBody{ttl: s.limits.DefaultTTL}
		if err := s.decodeBody([]byte(c.body), fieldTTL|fieldMetadata|fieldLeaseID, &got); err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.body, got, err, c.want)
		}
	}
}

// FuzzDecodeBodyMatchesReference checks decodeBody against referenceDecode
// on arbitrary bodies. The allowed field set (its low three bits) and the
// limits (tight picks scanServers[1]) are fuzzed too rather than looped
// over, to keep each execution cheap.
func FuzzDecodeBodyMatchesReference(f *testing.F) {
	// Only small seeds: the fuzzer minimizes every new interesting input
	// for up to a minute, which on inputs of kilobytes eats the whole run.
	// The table test covers the large bodies.
	n := 0
	add := func(b string) {
		if len(b) <= 200 {
			f.Add([]byte(b), uint8(allFields), false)
			f.Add([]byte(b), uint8(n%8), n%2 == 1)
			n++
		}
	}
	for _, b := range scanBodies {
		add(b)
	}
	for _, k := range scanKeys {
		add("{" + k + ":1}")
	}
	for _, v := range scanValues {
		add(`{"metadata":` + v + `}`)
		add(`{"ttl_seconds":` + v + `,"lease_id":` + v + `}`)
	}
	f.Fuzz(func(t *testing.T, body []byte, allowed uint8, tight bool) {
		s := scanServers[0]
		if tight {
			s = scanServers[1]
		}
		checkSameDecodeOne(t, s, body, fieldSet(allowed)&allFields)
	})
}

// BenchmarkDecodeBody measures a typical acquire and release body with the
// Decoder.Token walk (reference) and the scanner (scan).
func BenchmarkDecodeBody(b *testing.B) {
	s := &server{limits: lockcore.DefaultLimits}
	bodies := []struct {
		name    string
		body    []byte
		allowed fieldSet
	}{
		{"acquire", []byte(`{"ttl_seconds":60}`), fieldTTL | fieldMetadata | fieldLeaseID},
		{"release", []byte(`{"lease_id":"0123456789abcdef0123456789abcdef"}`), fieldLeaseID},
	}
	impls := []struct {
		name   string
		decode func(body []byte, allowed fieldSet, out *requestBody) error
	}{
		{"reference", func(body []byte, allowed fieldSet, out *requestBody) error {
			return referenceDecode(s, body, allowed, out)
		}},
		{"scan", s.decodeBody},
	}
	for _, impl := range impls {
		for _, c := range bodies {
			b.Run(impl.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				// One out for the whole loop: passed through a func value
				// it escapes, and its allocation is not the decoder's.
				var out requestBody
				for b.Loop() {
					out = requestBody{ttl: s.limits.DefaultTTL}
					if err := impl.decode(c.body, c.allowed, &out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
