package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/octostore/octostore/lockcore"
)

// MaxBodyBytes is the largest request body accepted (16 KiB); a larger one
// is answered 413 body_too_large.
const MaxBodyBytes = 16 << 10

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeJSON writes v as the JSON answer with status. Values are this
// package's response structs, which always encode.
func writeJSON(ex *exchange, status int, v any) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Unreachable with this package's types; answer rather than panic.
		buf.Reset()
		buf.WriteString(`{"error":"internal error","code":"internal","request_id":` + strconv.Quote(ex.requestID) + "}\n")
		status = http.StatusInternalServerError
	}
	h := ex.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	ex.WriteHeader(status)
	ex.Write(buf.Bytes())
}

// Fields a request body may carry, as a bit set.
type fieldSet uint8

const (
	fieldTTL fieldSet = 1 << iota
	fieldMetadata
	fieldLeaseID
)

var fieldNames = [...]struct {
	bit  fieldSet
	name string
	kind error // the lockcore error of a bad value of this field
}{
	{fieldTTL, "ttl_seconds", lockcore.ErrInvalidTTL},
	{fieldMetadata, "metadata", lockcore.ErrInvalidMetadata},
	{fieldLeaseID, "lease_id", lockcore.ErrInvalidLeaseID},
}

func (f fieldSet) list() string {
	s := ""
	for _, fn := range fieldNames {
		if f&fn.bit != 0 {
			if s != "" {
				s += ", "
			}
			s += fn.name
		}
	}
	return s
}

// requestBody is a decoded and validated lock request body. Absent fields
// have their has* flag false; TTL is the default when ttl_seconds is absent.
type requestBody struct {
	ttl         time.Duration
	metadata    string
	hasMetadata bool
	leaseID     string
	hasLeaseID  bool
}

// readBody reads r's body (at most MaxBodyBytes) and decodes it into out.
// When allowed names a field (the lock writes), a query parameter named
// like a lock request's field is refused first (see queryField). An empty
// or whitespace-only body means all defaults. Otherwise the body
// must be valid UTF-8 holding exactly one JSON object whose keys are among
// allowed, each at most once; each value must have its field's type and
// pass its rule, and metadata may not hold a \u escape of a lone UTF-16
// surrogate (encoding/json would store U+FFFD in its place). The error is
// a body_too_large handlerError (a body over MaxBodyBytes, refused on its
// Content-Length before it is read when that says so), an invalid_json
// one, or the field's lockcore.InputError.
func (s *server) readBody(ex *exchange, r *http.Request, allowed fieldSet, out *requestBody) error {
	out.ttl = s.limits.DefaultTTL
	if allowed != 0 && r.URL.RawQuery != "" {
		if err := queryField(r.URL.RawQuery, allowed); err != nil {
			return err
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength > MaxBodyBytes {
		// Refused on its declared length without reading it (a client that
		// sent "Expect: 100-continue" is not invited to upload it).
		return newError(errBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			bufPool.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(http.MaxBytesReader(ex.ResponseWriter, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(errBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
		}
		// The client stopped sending; not an input the server can judge.
		return &handlerError{Kind: errInvalidJSON, Msg: "request body could not be read", Detail: err}
	}
	if err := s.decodeBody(buf.Bytes(), allowed, out); err != nil {
		return err
	}
	// encoding/json turns a lone surrogate escape into U+FFFD: refuse it
	// rather than store text other than what was sent. Only metadata can
	// hold one here (keys, lease ids and numbers that did not match their
	// rule were refused above).
	if out.hasMetadata && strings.ContainsRune(out.metadata, utf8.RuneError) && hasLoneSurrogate(buf.Bytes()) {
		return &lockcore.InputError{Kind: lockcore.ErrInvalidMetadata, Msg: "metadata must be text: a \\u escape of a lone UTF-16 surrogate (D800 to DFFF, not in a high-low pair) is not a character; send the text as UTF-8"}
	}
	return nil
}

// queryField refuses a query string that names a lock request's body
// field (ttl_seconds, metadata or lease_id, in any case, between '&' or
// ';'). The server reads the fields from the JSON body only, and taking
// the request with the field's default instead (a 60 s lease for
// "?ttl_seconds=3600", a renew that keeps the old TTL or metadata) would
// give the caller something other than what it asked for. A field of
// allowed gets its own lockcore.InputError, saying to send it in the body;
// another gets invalid_json, as in the body, where it is an unknown field.
// Other query parameters are ignored, as on every route. A key that does
// not unescape is compared as written.
func queryField(rawQuery string, allowed fieldSet) error {
	for rest := rawQuery; rest != ""; {
		var part string
		if i := strings.IndexAny(rest, "&;"); i >= 0 {
			part, rest = rest[:i], rest[i+1:]
		} else {
			part, rest = rest, ""
		}
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		for _, fn := range fieldNames {
			if !strings.EqualFold(key, fn.name) {
				continue
			}
			if allowed&fn.bit == 0 {
				return newError(errInvalidJSON, fmt.Sprintf("%s in the query string is not a field of this request, whose JSON body takes %s (and nothing is read from the query string)", fn.name, allowed.list()))
			}
			return &lockcore.InputError{Kind: fn.kind, Msg: fn.name + " must be sent in the JSON request body, not in the query string (-d '{\"" + fn.name + "\":…}')"}
		}
	}
	return nil
}

// hasLoneSurrogate reports whether the valid JSON text body holds a \u
// escape of a UTF-16 surrogate that is not part of a high-low pair.
func hasLoneSurrogate(body []byte) bool {
	for i := 0; i+1 < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if body[i+1] != 'u' {
			i++ // the escaped character, a backslash included
			continue
		}
		switch r := uEscape(body, i); {
		case r >= 0xD800 && r < 0xDC00:
			if lo := uEscape(body, i+6); lo < 0xDC00 || lo >= 0xE000 {
				return true
			}
			i += 11
		case r >= 0xDC00 && r < 0xE000:
			return true
		default:
			i += 5
		}
	}
	return false
}

// uEscape returns the code unit of the \uXXXX escape at body[i:], or -1
// if there is none.
func uEscape(body []byte, i int) int {
	if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
		return -1
	}
	v, err := strconv.ParseUint(string(body[i+2:i+6]), 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeBody is readBody after the read. Once utf8.Valid and json.Valid
// have accepted body, it walks the object with bodyScanner, answering as
// the encoding/json Decoder.Token walk it replaced did for every input
// (json_scan_test.go checks that against a copy of the old walk).
func (s *server) decodeBody(body []byte, allowed fieldSet, out *requestBody) error {
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
	// From here on body is one valid JSON value in valid UTF-8: the
	// scanner relies on that and never meets a syntax error.
	sc := bodyScanner{buf: body}
	if sc.peek() != '{' {
		return newError(errInvalidJSON, "request body must be a JSON object")
	}
	sc.pos++ // the '{'
	var seen fieldSet
	for {
		c := sc.peek()
		if c == ',' {
			sc.pos++
			c = sc.peek()
		}
		if c == '}' {
			return nil
		}
		key := sc.key()
		var bit fieldSet
		for _, fn := range fieldNames {
			if string(key) == fn.name {
				bit = fn.bit
			}
		}
		if bit == 0 || allowed&bit == 0 {
			if allowed == 0 {
				return newError(errInvalidJSON, fmt.Sprintf("unknown field %s in request body: this endpoint takes no fields", quoteKey(string(key))))
			}
			return newError(errInvalidJSON, fmt.Sprintf("unknown field %s in request body (allowed: %s)", quoteKey(string(key)), allowed.list()))
		}
		if seen&bit != 0 {
			return newError(errInvalidJSON, fmt.Sprintf("duplicate field %s in request body", quoteKey(string(key))))
		}
		seen |= bit
		sc.peek() // whitespace before the ':'
		sc.pos++  // the ':'
		sc.peek() // whitespace before the value
		if err := s.setField(bit, sc.value(), out); err != nil {
			return err
		}
	}
}

// setField checks one value against its field's type and rule and stores it.
func (s *server) setField(bit fieldSet, val bodyValue, out *requestBody) error {
	switch bit {
	case fieldTTL:
		if val.kind != kindNumber {
			return s.ttlKindError(tokenKind(val.token()))
		}
		// As json.Number would: the literal as written, parsed as a
		// base-10 int64 (so 1e3, 1.0 and out-of-range integers fail).
		n, err := strconv.ParseInt(string(val.num), 10, 64)
		if err != nil {
			max := int64(s.limits.MaxTTL / time.Second)
			lit := string(val.num)
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
		if val.kind != kindString {
			return &lockcore.InputError{Kind: lockcore.ErrInvalidMetadata, Msg: "metadata must be a string (got " + tokenKind(val.token()) + ")"}
		}
		if err := s.limits.ValidateMetadata(val.str); err != nil {
			return err
		}
		out.metadata, out.hasMetadata = val.str, true
	case fieldLeaseID:
		if val.kind != kindString {
			return &lockcore.InputError{Kind: lockcore.ErrInvalidLeaseID, Msg: "lease_id must be a string (got " + tokenKind(val.token()) + ")"}
		}
		if err := lockcore.ValidateLeaseID(val.str); err != nil {
			return err
		}
		out.leaseID, out.hasLeaseID = val.str, true
	}
	return nil
}

// bodyScanner walks the top-level object of a request body without
// encoding/json's Decoder, which allocates on every token.
//
// It assumes buf is valid UTF-8 and exactly one valid JSON value with only
// whitespace around it (decodeBody checks both with utf8.Valid and
// json.Valid first). It therefore does no syntax checking at all: on valid
// input each step has one possible reading, and on invalid input its results
// are meaningless (it may even index out of range). It yields what
// encoding/json's Decoder.Token with UseNumber would: the same keys, the
// same decoded strings and the same number literals.
type bodyScanner struct {
	buf []byte
	pos int // index of the next unread byte
}

// peek skips whitespace and returns the next byte without consuming it,
// or 0 at the end of buf.
func (sc *bodyScanner) peek() byte {
	for sc.pos < len(sc.buf) && isJSONSpace(sc.buf[sc.pos]) {
		sc.pos++
	}
	if sc.pos == len(sc.buf) {
		return 0
	}
	return sc.buf[sc.pos]
}

// stringLit consumes the string starting at sc.pos (its opening quote) and
// returns it with its quotes, as written, and whether it holds a backslash
// escape.
func (sc *bodyScanner) stringLit() (lit []byte, escaped bool) {
	start := sc.pos
	i := start + 1
	for sc.buf[i] != '"' {
		if sc.buf[i] == '\\' {
			escaped = true
			i++ // the escaped byte: '"' and '\\' must not end the loop
		}
		i++
	}
	sc.pos = i + 1
	return sc.buf[start:sc.pos], escaped
}

// key consumes an object key and returns it decoded. Without escapes it is
// a slice of buf (no allocation); with them it is decoded by encoding/json
// itself, so that e.g. "ttl\u005fseconds" is the key ttl_seconds.
func (sc *bodyScanner) key() []byte {
	lit, escaped := sc.stringLit()
	if !escaped {
		return lit[1 : len(lit)-1]
	}
	return []byte(unquoteJSON(lit))
}

// unquoteJSON decodes a valid JSON string literal (quotes included) exactly
// as encoding/json does, invalid surrogate escapes becoming U+FFFD.
func unquoteJSON(lit []byte) string {
	var s string
	_ = json.Unmarshal(lit, &s) // lit is valid JSON: no error
	return s
}

// valueKind is the JSON type of a scanned value.
type valueKind uint8

const (
	kindNull valueKind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// bodyValue is one scanned field value.
type bodyValue struct {
	kind valueKind
	b    bool   // kindBool: the value
	num  []byte // kindNumber: the literal as written (a slice of the body)
	str  string // kindString: the decoded string
}

// token returns the token encoding/json's Decoder.Token (with UseNumber)
// gives for the start of v, for tokenKind's wording in error sentences.
func (v bodyValue) token() json.Token {
	switch v.kind {
	case kindBool:
		return v.b
	case kindNumber:
		return json.Number(v.num)
	case kindString:
		return v.str
	case kindObject:
		return json.Delim('{')
	case kindArray:
		return json.Delim('[')
	}
	return nil
}

// value consumes the value starting at sc.pos (after any whitespace) and
// returns it. An object or array is skipped whole and returned as its kind
// only: no field takes one.
func (sc *bodyScanner) value() bodyValue {
	switch c := sc.buf[sc.pos]; c {
	case '"':
		lit, escaped := sc.stringLit()
		if !escaped {
			return bodyValue{kind: kindString, str: string(lit[1 : len(lit)-1])}
		}
		return bodyValue{kind: kindString, str: unquoteJSON(lit)}
	case 'n':
		sc.pos += len("null")
		return bodyValue{kind: kindNull}
	case 't':
		sc.pos += len("true")
		return bodyValue{kind: kindBool, b: true}
	case 'f':
		sc.pos += len("false")
		return bodyValue{kind: kindBool, b: false}
	case '{', '[':
		sc.skipComposite()
		if c == '[' {
			return bodyValue{kind: kindArray}
		}
		return bodyValue{kind: kindObject}
	}
	// A number: '-' or a digit, then digits, '.', 'e', 'E', '+', '-'. In
	// valid JSON no other byte belongs to it and the next one never does.
	start := sc.pos
	for sc.pos < len(sc.buf) && isNumberByte(sc.buf[sc.pos]) {
		sc.pos++
	}
	return bodyValue{kind: kindNumber, num: sc.buf[start:sc.pos]}
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// skipComposite consumes the object or array starting at sc.pos, nested
// ones included, counting brackets outside strings.
func (sc *bodyScanner) skipComposite() {
	depth := 0
	for {
		switch sc.buf[sc.pos] {
		case '"':
			sc.stringLit()
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		sc.pos++
		if depth == 0 {
			return
		}
	}
}

// tokenKind names the JSON type of a decoder token for an error sentence.
func tokenKind(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	}
	return "an unexpected value"
}

// quoteKey quotes a JSON key for an error sentence, cut short if long. The
// cut falls between characters, so it never shows part of one.
func quoteKey(k string) string {
	if len(k) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(k[cut]) {
			cut--
		}
		k = k[:cut] + "..."
	}
	return strconv.Quote(k)
}

// utf8Error says where body, which utf8.Valid refused, stops being UTF-8:
// the position (from 1) of the first byte that does not begin a valid
// character.
func utf8Error(body []byte) error {
	i := 0
	for i < len(body) {
		r, size := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		i += size
	}
	return newError(errInvalidJSON, fmt.Sprintf("request body must be valid UTF-8 (byte %d is not)", i+1))
}

// ttlKindError refuses a ttl_seconds that is not a JSON number; kind says
// what it was ("a string").
func (s *server) ttlKindError(kind string) error {
	max := int64(s.limits.MaxTTL / time.Second)
	return &lockcore.InputError{Kind: lockcore.ErrInvalidTTL, Msg: fmt.Sprintf("ttl_seconds must be an integer from 1 to %d (got %s)", max, kind)}
}

// syntaxError explains why body, which json.Valid refused, is not one JSON
// value.
func syntaxError(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	err := dec.Decode(&v)
	var se *json.SyntaxError
	switch {
	case err == nil:
		return newError(errInvalidJSON, "request body has data after the JSON object")
	case errors.As(err, &se):
		return newError(errInvalidJSON, fmt.Sprintf("request body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return newError(errInvalidJSON, "request body is not valid JSON: unexpected end of input")
	}
	return newError(errInvalidJSON, "request body is not valid JSON")
}
