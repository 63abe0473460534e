package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// sqliteOnly refuses to work on the default SQLite file when the server
// would use Redis (REDIS_URL set) and --db was not given: the copy or
// restore would then be of a database nobody uses.
func sqliteOnly(fs *flag.FlagSet, cmd string) error {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "db" })
	if os.Getenv("REDIS_URL") != "" && !given {
		return fmt.Errorf("%s: works on a SQLite database, and REDIS_URL is set (the server uses Redis); give --db to name the SQLite file, or use Redis' own persistence for Redis", cmd)
	}
	return nil
}

// backupCmd writes a consistent copy of the SQLite database to a new file
// while servers may go on using the database (sqlitestore.Backup).
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", envString("OCTOSTORE_DB", "./octostore.db"), "SQLite database file to copy (env OCTOSTORE_DB)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("backup: want one argument, the new file to write the copy to (got %d; the flags go before it)", fs.NArg())
	}
	if err := sqliteOnly(fs, "backup"); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("backup: --db (env OCTOSTORE_DB) is empty: name the SQLite database file")
	}
	n, err := sqlitestore.Backup(ctx, *db, fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backed up %s to %s (%d bytes)\n", *db, fs.Arg(0), n)
	return err
}

// restoreCmd makes a new SQLite database from a backup, with every lock
// dropped and every account's fencing counter raised to at least the
// floor, by default the current Unix time in microseconds
// (sqlitestore.Restore).
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", envString("OCTOSTORE_DB", "./octostore.db"), "SQLite database file to make; it must not exist (env OCTOSTORE_DB)")
	floor := fs.Int64("fence-floor", 0, "raise every account's fencing counter to at least this; it must be above every fencing token issued since the backup (default: the current Unix time in microseconds)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("restore: want one argument, the backup file (got %d; the flags go before it)", fs.NArg())
	}
	if err := sqliteOnly(fs, "restore"); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("restore: --db (env OCTOSTORE_DB) is empty: name the SQLite database file to make")
	}
	f := *floor
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "fence-floor" })
	if !given {
		f = time.Now().UnixMicro()
	}
	res, err := sqlitestore.Restore(ctx, fs.Arg(0), *db, f)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "restored %s to %s: %d locks dropped; every fencing counter (accounts: %d) is now at least %d\n",
		fs.Arg(0), *db, res.LocksDropped, res.Accounts, res.Floor)
	return err
}
