// Package lockcore is the domain of OctoStore: leases, lock states and
// accounts, the input rules (lock names, TTLs, metadata, lease ids, quota),
// the sentinel errors every layer speaks, and the Store interface that every
// backend implements.
//
// lockcore depends on the standard library only. Everything else in the
// project depends on it; it depends on nothing of the project.
//
// A lease can be lost at any time: it expires when its TTL runs out, whether
// or not its holder noticed (a GC pause, a network partition, a slow disk).
// The fencing token returned with every lease is what makes writes safe: a
// resource that records the highest token it has seen and refuses writes
// carrying a lower one cannot be corrupted by a holder that lost its lease.
package lockcore
