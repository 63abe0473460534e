// Package crashtest holds the crash runs of OctoStore (tests only): many
// concurrent clients issue random lock operations while the process that
// keeps the locks is killed with SIGKILL and restarted, again and again,
// and the recorded history is then checked with lincheck.CheckTimeline.
//
// The runs:
//
//   - TestCrashSQLiteBinary: the real octostore binary (built in TestMain)
//     serving a SQLite file is killed and restarted on the same database
//     and port; TestCrashSQLiteBinaryLinearizable is the same run with
//     leases that outlive it, whose whole history is also checked for
//     linearizability;
//   - TestCrashRedis: the real HTTP handler over a real redis-server run
//     with appendonly yes and appendfsync always, where redis-server is the
//     process killed and restarted;
//   - TestCrashRedisWithoutPersistenceIsCaught: the same over a
//     redis-server that keeps nothing, to show that the check can fail
//     (it must find violations).
//
// An operation whose answer was lost in a crash counts as unknown: it may
// or may not have taken effect. After every restart a reader asks for every
// lock, so that a lease, renewal or release acknowledged before the crash
// and missing after it is caught. What is checked: at most one holder of a
// lock at any moment by the store's clock, fencing tokens that never repeat
// or go down, no lease revived after it expired, every acknowledged
// release and renewal reflected in later answers (see
// lincheck.CheckTimeline for the precise rules).
//
// The default run is short (about five crashes each); with -soak or
// OCTOSTORE_SOAK=1 each run lasts OCTOSTORE_SOAK_DURATION (default 60 s).
package crashtest
