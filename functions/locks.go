package functions

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// lockRoutes are the lock endpoints; all need a bearer token.
func (s *server) lockRoutes() []route {
	return []route{
		{"POST /locks/{name}/acquire", authInStep, s.acquire},
		{"POST /locks/{name}/renew", authInStep, s.renew},
		{"POST /locks/{name}/release", authInStep, s.release},
		{"GET /locks/{name}", authFirst, s.getLock},
		{"GET /locks", authFirst, s.listLocks},
	}
}

// acquiredBody is the 200 answer of acquire.
type acquiredBody struct {
	Status       string `json:"status"`
	LeaseID      string `json:"lease_id"`
	FencingToken int64  `json:"fencing_token"`
	ExpiresAt    string `json:"expires_at"`
	TTLSeconds   int64  `json:"ttl_seconds"`
	Metadata     string `json:"metadata,omitempty"`
}

// heldBody is the 409 answer of acquire when another lease holds the lock.
type heldBody struct {
	Status       string `json:"status"`
	HolderID     string `json:"holder_id"`
	ExpiresAt    string `json:"expires_at"`
	RetryAfterMS int64  `json:"retry_after_ms"`
	Metadata     string `json:"metadata,omitempty"`
}

// renewedBody is the 200 answer of renew.
type renewedBody struct {
	Status       string `json:"status"`
	LeaseID      string `json:"lease_id"`
	FencingToken int64  `json:"fencing_token"`
	ExpiresAt    string `json:"expires_at"`
	TTLSeconds   int64  `json:"ttl_seconds"`
}

// releasedBody is the 200 answer of release.
type releasedBody struct {
	Status string `json:"status"`
	Name   string `json:"name"`
}

// heldLockBody is the status of a held lock, for GET /locks/{name} and
// GET /locks.
type heldLockBody struct {
	Name         string `json:"name"`
	Status       string `json:"status"`
	LeaseID      string `json:"lease_id"`
	HolderID     string `json:"holder_id"`
	FencingToken int64  `json:"fencing_token"`
	ExpiresAt    string `json:"expires_at"`
	Metadata     string `json:"metadata,omitempty"`
}

// freeLockBody is the status of a free lock.
type freeLockBody struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// listBody is the answer of GET /locks.
type listBody struct {
	Locks []heldLockBody `json:"locks"`
	Count int            `json:"count"`
}

func heldLock(l lockcore.Lease) heldLockBody {
	return heldLockBody{
		Name:         l.Name,
		Status:       "held",
		LeaseID:      l.LeaseID,
		HolderID:     l.HolderID(),
		FencingToken: l.FencingToken,
		ExpiresAt:    lockcore.FormatTime(l.ExpiresAt),
		Metadata:     l.Metadata,
	}
}

// lockName returns the validated {name} of r.
func lockName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, lockcore.ValidateName(name)
}

// opContext bounds one store write (acquire, renew, release, rotate) by the
// op timeout, and ends it when r's context does: a write whose client has
// gone is dropped when it has not started yet (the SQLite writer skips it),
// so that an acquire nobody will hear of does not hold the lock for its
// TTL, and a rotation nobody will hear of does not retire the token its
// client still has. A client that merely half-closed (see stepContext)
// and still reads then gets 503 store_unavailable (see writeError): the
// outcome is unknown, as after a timeout, and a retry is safe.
func (s *server) opContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opTimeout)
}

// readContext bounds one store read (a lock's status, the list, a token's
// account) by the op timeout, without ending it with r's context (see
// stepContext): a read changes nothing, so a half-closed client gets its
// answer.
func (s *server) readContext(r *http.Request) (context.Context, context.CancelFunc) {
	return stepContext(r, s.opTimeout)
}

// stepContext bounds one store step of r by d, or by r's own deadline when
// that comes first (a Lambda invocation's), but does not end when r's
// context is cancelled: net/http cancels that as soon as the client
// half-closes its side of the connection (a request followed by
// shutdown(SHUT_WR), as HTTP/1.0 clients and `nc -N` do), while that client
// is still waiting for the answer. A read or a health check cut short then
// failed a valid request (and /health said the store was down). A client
// that is really gone does not read the answer either way; the step is
// still bounded.
func stepContext(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(d)
	if pd, ok := r.Context().Deadline(); ok && pd.Before(deadline) {
		deadline = pd
	}
	return context.WithDeadline(context.WithoutCancel(r.Context()), deadline)
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// acquire serves POST /locks/{name}/acquire.
func (s *server) acquire(ex *exchange, r *http.Request) error {
	name, err := lockName(r)
	if err != nil {
		return err
	}
	var body requestBody
	if err := s.readBody(ex, r, fieldTTL|fieldMetadata|fieldLeaseID, &body); err != nil {
		return err
	}
	opts := lockcore.AcquireOptions{LeaseID: body.leaseID, TTL: body.ttl, MaxHeld: s.limits.MaxHeldLocks}
	if !body.hasLeaseID {
		opts.LeaseID = lockcore.NewLeaseID()
	}
	if body.hasMetadata {
		opts.Metadata = &body.metadata
	}
	ctx, cancel := s.opContext(r)
	defer cancel()
	var res lockcore.AcquireResult
	if s.tokenLocks != nil {
		res, err = s.tokenLocks.AcquireAs(ctx, ex.tokenHash, ex.account.ID, name, opts)
		err = s.stepProved(ex, err)
	} else {
		res, err = s.store.Acquire(ctx, ex.account.ID, name, opts)
	}
	if err != nil {
		if errors.Is(err, lockcore.ErrLockLimitExceeded) {
			return &handlerError{Kind: lockcore.ErrLockLimitExceeded, Msg: limitMsg(s.limits.MaxHeldLocks)}
		}
		return err
	}
	l := res.Lease
	if !res.Acquired {
		wait := max(l.ExpiresAt.Sub(res.Now), 0)
		writeJSON(ex, http.StatusConflict, &heldBody{
			Status:       "held",
			HolderID:     l.HolderID(),
			ExpiresAt:    lockcore.FormatTime(l.ExpiresAt),
			RetryAfterMS: wait.Milliseconds(),
			Metadata:     l.Metadata,
		})
		return nil
	}
	writeJSON(ex, http.StatusOK, &acquiredBody{
		Status:       "acquired",
		LeaseID:      l.LeaseID,
		FencingToken: l.FencingToken,
		ExpiresAt:    lockcore.FormatTime(l.ExpiresAt),
		TTLSeconds:   seconds(l.TTL),
		Metadata:     l.Metadata,
	})
	return nil
}

// renew serves POST /locks/{name}/renew.
func (s *server) renew(ex *exchange, r *http.Request) error {
	name, err := lockName(r)
	if err != nil {
		return err
	}
	var body requestBody
	if err := s.readBody(ex, r, fieldTTL|fieldLeaseID, &body); err != nil {
		return err
	}
	if !body.hasLeaseID {
		return errLeaseIDRequired
	}
	ctx, cancel := s.opContext(r)
	defer cancel()
	var l lockcore.Lease
	if s.tokenLocks != nil {
		l, err = s.tokenLocks.RenewAs(ctx, ex.tokenHash, ex.account.ID, name, body.leaseID, body.ttl)
		err = s.stepProved(ex, err)
	} else {
		l, err = s.store.Renew(ctx, ex.account.ID, name, body.leaseID, body.ttl)
	}
	if err != nil {
		return err
	}
	writeJSON(ex, http.StatusOK, &renewedBody{
		Status:       "renewed",
		LeaseID:      l.LeaseID,
		FencingToken: l.FencingToken,
		ExpiresAt:    lockcore.FormatTime(l.ExpiresAt),
		TTLSeconds:   seconds(l.TTL),
	})
	return nil
}

var errLeaseIDRequired = &lockcore.InputError{Kind: lockcore.ErrInvalidLeaseID, Msg: "lease_id is required"}

// release serves POST /locks/{name}/release.
func (s *server) release(ex *exchange, r *http.Request) error {
	name, err := lockName(r)
	if err != nil {
		return err
	}
	var body requestBody
	if err := s.readBody(ex, r, fieldLeaseID, &body); err != nil {
		return err
	}
	if !body.hasLeaseID {
		return errLeaseIDRequired
	}
	ctx, cancel := s.opContext(r)
	defer cancel()
	if s.tokenLocks != nil {
		err = s.stepProved(ex, s.tokenLocks.ReleaseAs(ctx, ex.tokenHash, ex.account.ID, name, body.leaseID))
	} else {
		err = s.store.Release(ctx, ex.account.ID, name, body.leaseID)
	}
	if err != nil {
		return err
	}
	writeJSON(ex, http.StatusOK, &releasedBody{Status: "released", Name: name})
	return nil
}

// getLock serves GET /locks/{name}.
func (s *server) getLock(ex *exchange, r *http.Request) error {
	name, err := lockName(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.readContext(r)
	defer cancel()
	st, err := s.store.Get(ctx, ex.account.ID, name)
	if err != nil {
		return err
	}
	if !st.Held {
		writeJSON(ex, http.StatusOK, &freeLockBody{Name: name, Status: "free"})
		return nil
	}
	b := heldLock(st.Lease)
	b.Name = name
	writeJSON(ex, http.StatusOK, &b)
	return nil
}

// listLocks serves GET /locks.
func (s *server) listLocks(ex *exchange, r *http.Request) error {
	ctx, cancel := s.readContext(r)
	defer cancel()
	leases, err := s.store.List(ctx, ex.account.ID)
	if err != nil {
		return err
	}
	b := listBody{Locks: make([]heldLockBody, 0, len(leases)), Count: len(leases)}
	for _, l := range leases {
		b.Locks = append(b.Locks, heldLock(l))
	}
	writeJSON(ex, http.StatusOK, &b)
	return nil
}
