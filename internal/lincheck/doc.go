// Package lincheck proves that OctoStore's lock API behaves like one lock
// per name, as seen by many concurrent clients over real HTTP.
//
// It has four parts:
//
//   - Model: a porcupine model of one lock (partitioned by lock name) with
//     the operations acquire (with a client-chosen lease id), renew, release
//     and get. A history of those operations, each with its call and return
//     time, is linearizable under the model only if every answer could have
//     come from one lock taking the operations one at a time, in an order
//     that respects real time.
//   - Recorder and Workload: concurrent clients that issue random
//     operations against a running server (any URL: an httptest server
//     around functions.New, or the octostore binary) and record them.
//     An operation whose answer was lost (transport error, 503, timeout) is
//     recorded as unknown: it may or may not have taken effect, and the
//     model allows both.
//   - Check: runs porcupine with a time limit and, when a history is not
//     linearizable, writes porcupine's HTML visualisation to a file and
//     reports its path.
//   - CheckTimeline: a second, clock-based check over the same recorded
//     operations, for histories in which leases expire and for crash runs:
//     at most one holder of a lock at any moment by the store's clock,
//     fencing tokens that never repeat or go down, no lease revived after
//     it expired, and acknowledged releases and renewals that later reads
//     agree with.
//
// # Why the porcupine model has no expiry
//
// Expiry depends on the store's clock at the instant an operation takes
// effect, and porcupine gives a step function no time. Answers to
// released, lease_not_current and free carry no store time at all, so a
// model that tried to decide "had the lease expired at this point?" would
// have to guess, and guessing either way makes it unsound (false alarms) or
// toothless. The workload therefore uses a TTL of 3600 s, the longest the
// contract allows, and histories last seconds: no lease can expire during a
// history, so a model without expiry is exact.
//
// Expiry itself is checked by CheckTimeline on histories run with short
// TTLs (and by the crash runs): every acknowledged acquire and renew
// carries expires_at and ttl_seconds, so expires_at − ttl is the store time
// at which it took effect, exactly. From those the check rebuilds each
// lease's holding interval by the store's clock and proves that no two
// intervals of one lock overlap. This relies on the store's clock and the
// test's clock being the same clock (the same machine: SQLite uses the
// server's time.Now, Redis its TIME), which the tests guarantee by running
// everything on loopback; a small slack covers millisecond truncation.
//
// # Fencing tokens in the model
//
// The fencing counter is per account and several locks share it, and an
// acquire whose answer was lost may consume a value nobody sees, so the
// model does not demand last+1: a new lease's token must be strictly
// greater than every token the model has seen issued for that lock, and
// every later answer about the same lease must show the same token.
//
// Everything here is safe for concurrent use where it says so (Recorder);
// the model functions are pure.
package lincheck
