package lincheck

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/octostore/octostore/lockcore"
)

// OpKind is the operation a client asked for.
type OpKind uint8

// The operations of the model.
const (
	// OpAcquire is POST /locks/{name}/acquire with a client-chosen lease id.
	OpAcquire OpKind = iota + 1
	// OpRenew is POST /locks/{name}/renew.
	OpRenew
	// OpRelease is POST /locks/{name}/release.
	OpRelease
	// OpGet is GET /locks/{name}.
	OpGet
)

// String names the operation.
func (k OpKind) String() string {
	switch k {
	case OpAcquire:
		return "acquire"
	case OpRenew:
		return "renew"
	case OpRelease:
		return "release"
	case OpGet:
		return "get"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Outcome is the class of an answer.
type Outcome uint8

// The outcomes an operation can have.
const (
	// Unknown means the answer was lost (transport error, timeout, 503):
	// the operation may or may not have taken effect.
	Unknown Outcome = iota
	// Acquired is acquire's 200.
	Acquired
	// Held is acquire's 409 "held" (HolderID set) or get's "held" (LeaseID,
	// HolderID and Token set).
	Held
	// Renewed is renew's 200.
	Renewed
	// NotCurrent is renew's or release's 409 lease_not_current.
	NotCurrent
	// Released is release's 200.
	Released
	// Free is get's "free".
	Free
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Unknown:
		return "unknown"
	case Acquired:
		return "acquired"
	case Held:
		return "held"
	case Renewed:
		return "renewed"
	case NotCurrent:
		return "lease_not_current"
	case Released:
		return "released"
	case Free:
		return "free"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Input is what a client sent: the operation, the lock and, except for
// get, the lease id.
type Input struct {
	Kind    OpKind
	Lock    string
	LeaseID string
	// TTL is the ttl_seconds sent with acquire and renew (zero otherwise).
	TTL time.Duration
}

// Output is what the client was told. Fields not carried by an outcome are
// zero.
type Output struct {
	Outcome Outcome
	// LeaseID is the lease the answer is about (acquired, renewed, get's
	// held).
	LeaseID string
	// HolderID is the opaque holder id (held).
	HolderID string
	// Token is the fencing token (acquired, renewed, get's held).
	Token int64
	// ExpiresAt is the expiry by the store's clock (acquired, renewed,
	// held).
	ExpiresAt time.Time
	// TTL is the ttl_seconds of the answer (acquired, renewed).
	TTL time.Duration
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Err describes why an Unknown answer is unknown.
	Err string
}

// lockState is the model's state of one lock. It is a comparable value so
// that porcupine can compare states with ==.
type lockState struct {
	held  bool
	lease string
	// token is the current lease's fencing token; 0 while it is not known
	// (the lease came from an acquire whose answer was lost).
	token int64
	// minToken is, while token is unknown, the least value it can have.
	minToken int64
	// floor is the greatest fencing token known to have been issued for
	// this lock: every new lease's token must exceed it.
	floor int64
}

// newLease returns the state after a new lease with the given token (0 for
// unknown) was created on a free lock, or false if the token is too small.
func (s lockState) newLease(lease string, token int64) (lockState, bool) {
	if token == 0 {
		return lockState{held: true, lease: lease, minToken: s.floor + 1, floor: s.floor}, true
	}
	if token <= s.floor {
		return s, false
	}
	return lockState{held: true, lease: lease, token: token, floor: token}, true
}

// seeToken checks an answer's token against the current lease's, learning
// it if it was unknown.
func (s lockState) seeToken(token int64) (lockState, bool) {
	if s.token != 0 {
		return s, token == s.token
	}
	if token < s.minToken {
		return s, false
	}
	return lockState{held: true, lease: s.lease, token: token, floor: token}, true
}

// freed is the state after the current lease was released.
func (s lockState) freed() lockState {
	floor := s.floor
	if s.held && s.token == 0 {
		// The lost acquire used a token of at least minToken; the next
		// lease must beat that.
		floor = s.minToken
	}
	return lockState{floor: floor}
}

// holds reports whether lease is the current holder.
func (s lockState) holds(lease string) bool { return s.held && s.lease == lease }

// step returns every state the lock can be in after applying in with answer
// out in state s; none means the answer is impossible.
func step(s lockState, in Input, out Output) []lockState {
	one := func(n lockState, ok bool) []lockState {
		if ok {
			return []lockState{n}
		}
		return nil
	}
	switch in.Kind {
	case OpAcquire:
		switch out.Outcome {
		case Acquired:
			if out.LeaseID != in.LeaseID {
				return nil
			}
			if !s.held {
				return one(s.newLease(in.LeaseID, out.Token))
			}
			if s.lease == in.LeaseID {
				return one(s.seeToken(out.Token))
			}
			return nil
		case Held:
			return one(s, s.held && s.lease != in.LeaseID && lockcore.HolderID(s.lease) == out.HolderID)
		case Unknown:
			if !s.held {
				n, _ := s.newLease(in.LeaseID, 0)
				return []lockState{s, n}
			}
			return []lockState{s}
		}
	case OpRenew:
		switch out.Outcome {
		case Renewed:
			if out.LeaseID != in.LeaseID || !s.holds(in.LeaseID) {
				return nil
			}
			return one(s.seeToken(out.Token))
		case NotCurrent:
			return one(s, !s.holds(in.LeaseID))
		case Unknown:
			return []lockState{s}
		}
	case OpRelease:
		switch out.Outcome {
		case Released:
			return one(s.freed(), s.holds(in.LeaseID))
		case NotCurrent:
			return one(s, !s.holds(in.LeaseID))
		case Unknown:
			if s.holds(in.LeaseID) {
				return []lockState{s, s.freed()}
			}
			return []lockState{s}
		}
	case OpGet:
		switch out.Outcome {
		case Held:
			if !s.held || s.lease != out.LeaseID || lockcore.HolderID(out.LeaseID) != out.HolderID {
				return nil
			}
			return one(s.seeToken(out.Token))
		case Free:
			return one(s, !s.held)
		case Unknown:
			return []lockState{s}
		}
	}
	return nil
}

// Model returns the porcupine model of OctoStore's locks: histories are
// partitioned by lock name and each partition is checked against one lock
// (see the package documentation for what it allows). The model is pure and
// safe for concurrent use.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partition,
		Init:      func() []interface{} { return []interface{}{lockState{}} },
		Step: func(st, in, out interface{}) []interface{} {
			next := step(st.(lockState), in.(Input), out.(Output))
			res := make([]interface{}, len(next))
			for i, n := range next {
				res[i] = n
			}
			return res
		},
		Equal:             func(a, b interface{}) bool { return a.(lockState) == b.(lockState) },
		Hash:              hashState,
		DescribeOperation: describeOperation,
		DescribeState:     describeState,
	}
	return nm.ToModel()
}

// partition splits a history by lock name, in name order.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byLock := map[string][]porcupine.Operation{}
	var names []string
	for _, op := range history {
		name := op.Input.(Input).Lock
		if _, ok := byLock[name]; !ok {
			names = append(names, name)
		}
		byLock[name] = append(byLock[name], op)
	}
	sort.Strings(names)
	parts := make([][]porcupine.Operation, 0, len(names))
	for _, n := range names {
		parts = append(parts, byLock[n])
	}
	return parts
}

func describeOperation(in, out interface{}) string {
	i, o := in.(Input), out.(Output)
	call := fmt.Sprintf("%s(%s", i.Kind, i.Lock)
	if i.LeaseID != "" {
		call += ", " + i.LeaseID
	}
	call += ")"
	switch o.Outcome {
	case Acquired, Renewed:
		return fmt.Sprintf("%s -> %s token=%d", call, o.Outcome, o.Token)
	case Held:
		if o.LeaseID != "" {
			return fmt.Sprintf("%s -> held by %s token=%d", call, o.LeaseID, o.Token)
		}
		return fmt.Sprintf("%s -> held by %s", call, o.HolderID)
	case Unknown:
		return fmt.Sprintf("%s -> unknown (%s)", call, o.Err)
	}
	return fmt.Sprintf("%s -> %s", call, o.Outcome)
}

func describeState(st interface{}) string { return st.(lockState).String() }

// hashState hashes a state consistently with ==, so porcupine compares
// fewer states.
func hashState(st interface{}) uint64 {
	s := st.(lockState)
	h := fnv.New64a()
	fmt.Fprintf(h, "%t|%s|%d|%d|%d", s.held, s.lease, s.token, s.minToken, s.floor)
	return h.Sum64()
}

// String describes the state for visualisations and test failures.
func (s lockState) String() string {
	if !s.held {
		return fmt.Sprintf("free (last token %d)", s.floor)
	}
	if s.token == 0 {
		return fmt.Sprintf("held by %s token>=%d (unknown)", s.lease, s.minToken)
	}
	return fmt.Sprintf("held by %s token=%d", s.lease, s.token)
}
