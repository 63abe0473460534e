// Command floor is a lock server that does no work: it answers OctoStore's
// acquire and release requests with fixed answers of the same shape and
// size, on net/http with the same server limits as `octostore serve`, and
// keeps no state. `make bench-compare` drives it with the same load as
// every other target, so the table shows, in the same run, the ceiling of
// any net/http service on the machine: what the HTTP exchange alone costs
// (request parsing, the body read, the answer written, the system calls),
// with no store, no authentication and no log. OctoStore's figure divided
// by this one is the share of the ceiling it reaches.
//
//	go run ./bench/floor -addr 127.0.0.1:24798
//
// It is a measuring aid only: every acquire "succeeds", so it answers
// nothing about locking, and it must not be mistaken for a lock service.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/httpserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "listen address")
	flag.Parse()
	// serve's limits: each sets a deadline per request, part of what a
	// request costs.
	srv := httpserver.New(newHandler(), nil)
	srv.Addr = *addr
	log.Fatal(srv.ListenAndServe())
}

// newHandler returns the floor's routes: POST /locks/{name}/acquire and
// /release (the body is read and dropped; the answer is fixed but for the
// name and a counter standing in for the fencing token, started at the
// clock in microseconds so that it has the 16 digits of a real one) and
// GET /health. It is safe for concurrent use.
func newHandler() http.Handler {
	var fence atomic.Int64
	fence.Store(time.Now().UnixMicro())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /locks/{name}/acquire", func(w http.ResponseWriter, r *http.Request) {
		if !drain(w, r) {
			return
		}
		b := make([]byte, 0, 192)
		b = append(b, `{"status":"acquired","lease_id":"3b0b2f54-8f7e-4c0e-9d55-2a8f1c6e7b10","fencing_token":`...)
		b = strconv.AppendInt(b, fence.Add(1), 10)
		b = append(b, `,"expires_at":"`...)
		b = time.Now().Add(30*time.Second).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, `","ttl_seconds":30}`...)
		answer(w, b)
	})
	mux.HandleFunc("POST /locks/{name}/release", func(w http.ResponseWriter, r *http.Request) {
		if !drain(w, r) {
			return
		}
		name, _ := json.Marshal(r.PathValue("name")) // a string always marshals
		b := append([]byte(`{"status":"released","name":`), name...)
		answer(w, append(b, '}'))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		answer(w, []byte(`{"status":"ok"}`))
	})
	return mux
}

// drain reads the request body (at most functions.MaxBodyBytes, the API
// handlers' bound) as a real handler
// must before it answers; on a failed read it answers 400 and reports
// false.
func drain(w http.ResponseWriter, r *http.Request) bool {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, functions.MaxBodyBytes)); err != nil {
		http.Error(w, `{"error":"unreadable body","code":"invalid_request"}`, http.StatusBadRequest)
		return false
	}
	return true
}

// answer writes a 200 JSON answer.
func answer(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}
