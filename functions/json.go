package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
}{
	{fieldTTL, "ttl_seconds"},
	{fieldMetadata, "metadata"},
	{fieldLeaseID, "lease_id"},
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
// An empty or whitespace-only body means all defaults. Otherwise the body
// must be valid UTF-8 holding exactly one JSON object whose keys are among
// allowed, each at most once; each value must have its field's type and
// pass its rule. The error is an invalid_json handlerError or the field's
// lockcore.InputError.
func (s *server) readBody(ex *exchange, r *http.Request, allowed fieldSet, out *requestBody) error {
	out.ttl = s.limits.DefaultTTL
	if r.Body == nil || r.Body == http.NoBody {
		return nil
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
	return s.decodeBody(buf.Bytes(), allowed, out)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeBody is readBody after the read.
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
		return newError(errInvalidJSON, "request body must be valid UTF-8")
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
		if err := s.setField(bit, val, out); err != nil {
			return err
		}
	}
	return nil
}

// setField checks one value against its field's type and rule and stores it.
func (s *server) setField(bit fieldSet, val json.Token, out *requestBody) error {
	switch bit {
	case fieldTTL:
		num, ok := val.(json.Number)
		if !ok {
			return &lockcore.InputError{Kind: lockcore.ErrInvalidTTL, Msg: "ttl_seconds must be a JSON integer (got " + tokenKind(val) + ")"}
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

// quoteKey quotes a JSON key for an error sentence, cut short if long.
func quoteKey(k string) string {
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return strconv.Quote(k)
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
