package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// backupCmd writes a consistent copy of the SQLite database to a new file
// while servers may go on using the database (sqlitestore.Backup).
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage of backup: octostore backup [--db FILE] COPY
  writes a consistent copy of the SQLite database FILE to the new file COPY, also while the
  server runs. SQLite only: with a Redis store (--redis-url, or REDIS_URL without --db) it
  refuses, and --op-timeout is not used. The store flags it shares with serve:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("backup: want one argument, the new file to write the copy to (got %d; the flags go before it)", fs.NArg())
	}
	if err := sf.resolve(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if sf.redisURL != "" {
		return errors.New("backup: works on a SQLite database, and the store is Redis (REDIS_URL or --redis-url); give --db to name a SQLite file, or use Redis' own persistence (RDB, AOF) for Redis")
	}
	n, err := sqlitestore.Backup(ctx, sf.db, fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backed up %s to %s (%d bytes)\n", sf.db, fs.Arg(0), n)
	return err
}

// restoreCmd prepares a restored store so that it keeps the fencing
// promise: every lock dropped and every account's fencing counter raised
// to at least the floor, by default the current Unix time in
// microseconds (on Redis, by the later of this machine's clock and the
// Redis clock, which tokens follow there). It works on the store serve
// would use: on SQLite it makes the database --db from a backup file
// (sqlitestore.Restore); on Redis,
// which loads its own snapshot, it takes no file and prepares the data in
// place (redisstore.Store.PrepareRestored).
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	floor := fs.Int64("fence-floor", 0, "raise every account's fencing counter to at least this; it must be above every fencing token issued since the backup (default: the current Unix time in microseconds; on Redis, by the later of this machine's clock and the Redis clock)")
	force := fs.Bool("force", false, "Redis: restore even while servers are connected to the Redis (their held locks are dropped under them)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := sf.resolve(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f := *floor
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "fence-floor" })
	if !given {
		f = time.Now().UnixMicro()
	}
	if sf.redisURL != "" {
		if fs.NArg() != 0 {
			return fmt.Errorf("restore: with Redis, load the snapshot into Redis its own way first; restore then takes no file (got %d arguments)", fs.NArg())
		}
		st, _, err := sf.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		rs, ok := st.(*redisstore.Store)
		if !ok {
			return fmt.Errorf("restore: the store is %T, not Redis", st)
		}
		servers, err := rs.ServersConnected(ctx)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "restore: could not list the clients of Redis to check that no server uses it (%v); going on\n", err)
		case len(servers) > 0 && !*force:
			return fmt.Errorf("restore: %d connection(s) of OctoStore servers are open to this Redis (from %s): a restore would drop the locks they hold under them. Stop every server first (octostore serve; for the Lambda function, set its reserved concurrency to 0: the connections of its idle instances then close within minutes), or give --force", len(servers), strings.Join(servers, ", "))
		}
		clock := "this machine's clock"
		if !given {
			// Tokens follow the Redis clock, which may be ahead of this
			// machine's: the default floor is the later of the two.
			rc, err := rs.Clock(ctx)
			if err != nil {
				return fmt.Errorf("restore: read the Redis clock for the default fencing floor: %w", err)
			}
			if us := rc.UnixMicro(); us > f {
				f, clock = us, "the Redis clock"
			}
		}
		res, err := rs.PrepareRestored(ctx, f)
		if err != nil {
			return explainFloor(err, given, clock)
		}
		return printRestored(stdout, "Redis (prefix "+rs.Prefix()+")", res)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("restore: want one argument, the backup file (got %d; the flags go before it)", fs.NArg())
	}
	res, err := sqlitestore.Restore(ctx, fs.Arg(0), sf.db, f)
	if err != nil {
		return explainFloor(err, given, "this machine's clock")
	}
	return printRestored(stdout, fs.Arg(0)+" to "+sf.db, res)
}

// explainFloor turns a restore's refusal of its floor into a message that
// says what to do: with the default floor (given false), clock (the one
// the default floor was read from) is behind the counters; with
// --fence-floor, the value was too low. Other errors pass unchanged.
func explainFloor(err error, given bool, clock string) error {
	var low *lockcore.FloorBelowCounterError
	if !errors.As(err, &low) {
		return err
	}
	if given {
		return fmt.Errorf("restore: --fence-floor %d is below the fencing counter of account %s (%d), so it is not above every token issued; nothing was changed. Give --fence-floor %d or more, above the highest token your resources have seen", low.Floor, low.AccountID, low.Counter, low.Counter)
	}
	return fmt.Errorf("restore: the default fencing floor, %s (%d µs since 1970), is below the fencing counter of account %s (%d): the clock is behind, or an earlier restore was given a higher --fence-floor; nothing was changed. Give --fence-floor %d or more, above the highest token your resources have seen", clock, low.Floor, low.AccountID, low.Counter, low.Counter)
}

// printRestored writes restore's one line of output.
func printRestored(w io.Writer, what string, res lockcore.RestoreResult) error {
	_, err := fmt.Fprintf(w, "restored %s: %d locks dropped; every fencing counter (accounts: %d) is now at least %d\n",
		what, res.LocksDropped, res.Accounts, res.Floor)
	return err
}
