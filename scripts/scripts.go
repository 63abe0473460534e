// Package scripts holds the Lua scripts that make each Redis operation of
// OctoStore atomic: one file per operation, each headed by a comment naming
// its KEYS and ARGV and describing its reply.
//
// The scripts follow the key layout of DESIGN.md: every key of one account
// carries the hash tag {a:<account-id>}, every key a script touches is passed
// in KEYS, and each script touches keys of one hash slot only, so they run
// unchanged on a standalone Redis, Redis Cluster and miniredis. Time comes
// from redis.call('TIME') (milliseconds; acquire.lua also reads it in
// microseconds, which fencing tokens follow), never from the caller; a
// lease is held while now < expires.
//
// This package only embeds text; it does not depend on any Redis client.
package scripts

import _ "embed"

// Acquire is acquire.lua: take a lock for a lease (new lease, idempotent
// retry of the current lease, refusal because another lease holds it, or
// refusal because of the account's quota), and issue the fencing token:
// max(the account's counter + 1, the Redis clock in microseconds), stored
// back in the counter. Given the account's token mirror key as an extra
// fourth key, it first checks that the key exists and otherwise changes
// nothing and answers "token not proved" (status -1).
//
//go:embed acquire.lua
var Acquire string

// Renew is renew.lua: move the expiry of the current lease if the lease id
// holds the lock now. Given the account's token mirror key as an extra third
// key, it first checks that the key exists and otherwise changes nothing and
// answers "token not proved" (status -1).
//
//go:embed renew.lua
var Renew string

// Release is release.lua: free a lock if the lease id holds it now; the
// fencing counter is never touched. Given the account's token mirror key as
// an extra third key, it first checks that the key exists and otherwise
// changes nothing and answers "token not proved" (-1).
//
//go:embed release.lua
var Release string

// Get is get.lua: read one lock against the server clock.
//
//go:embed get.lua
var Get string

// List is list.lua: an atomic snapshot of an account's unexpired leases,
// with lazy cleanup of expired entries of the held set.
//
//go:embed list.lua
var List string

// Account is account.lua: create an account record if it is absent, or
// update the login of an existing one.
//
//go:embed account.lua
var Account string

// Rotate is rotate.lua: retire the old token of a rotation by replacing it
// with a short-lived tombstone naming the new token, so that exactly one of
// concurrent rotations wins even when a client retries the call.
//
//go:embed rotate.lua
var Rotate string

// Revoke is revoke.lua: delete a live token (not a rotation tombstone).
//
//go:embed revoke.lua
var Revoke string

// NotProved is the status (the first element of the array reply {-1, now},
// now in milliseconds of the server clock) with which acquire.lua,
// renew.lua and release.lua refuse a call whose optional token mirror key
// <prefix>{a:ID}:tok:<sha256 hex> does not exist, unless the optional
// revocation mark <prefix>{a:ID}:revoked:<sha256 hex> that follows it is
// passed, does not exist, and the deadline passed with it is not reached.
// They return it only when the mirror key is passed.
const NotProved = -1

// TombstonePrefix starts the value rotate.lua leaves under a retired token
// key; a token key holding such a value is an unknown token.
const TombstonePrefix = "rotated:"

// Restore is restore.lua: after Redis was restored from a snapshot, raise
// one account's fencing counter to at least a floor (never lowering it),
// delete its held-locks index and the lock hashes it is given, and answer
// how many of those existed.
//
//go:embed restore.lua
var Restore string
