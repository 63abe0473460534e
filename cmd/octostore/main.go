// Command octostore is the self-hosted OctoStore server and its operator
// tools in one binary:
//
//	octostore [serve] [--addr ADDR] [--db PATH | --redis-url URL [--redis-cluster]]
//	octostore token create --login NAME [store flags]
//	octostore token revoke [store flags] [TOKEN|-]
//	octostore token revoke [store flags] --account ID
//	octostore backup [--db FILE] COPY
//	octostore restore [--db FILE | --redis-url URL] [--fence-floor N] [COPY]
//	octostore bench [--target octostore|etcd|redis] [--url URL] [--clients N] [--duration D] [--contended] [--json]
//	octostore version
//
// Every flag of serve, and the store flags (--db, --redis-url, ...) of the
// other commands, can also come from the environment (see README.md); a flag
// given on the command line wins over the environment. Of the other flags,
// only bench's --url and --token have one (OCTOSTORE_URL, OCTOSTORE_TOKEN).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/octostore/octostore/internal/buildinfo"
	"github.com/octostore/octostore/internal/stopsignal"
)

func main() {
	// SIGHUP too: a closed terminal (or a reflexive "reload") would
	// otherwise end the server at once, cutting the requests in flight and
	// the last 100 ms of its log (see package stopsignal for the rest).
	ctx, stop := stopsignal.Context()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the flags were printed
	}
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(2) // the flag package has printed the problem and the flags
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "octostore:", err)
		os.Exit(2)
	}
}

const usage = `usage:
  octostore [serve] [flags]          run the server (default)
  octostore token create --login NAME [store flags]
                                     create the account if needed and print a new token
  octostore token revoke [store flags] [TOKEN|-]
                                     revoke a token (read from stdin when absent or "-")
  octostore token revoke [store flags] --account ID
                                     revoke every token of an account
  octostore backup [--db FILE] COPY  write a consistent copy of the SQLite database to the new file COPY,
                                     also while the server runs
  octostore restore [--db FILE] [--fence-floor N] COPY
                                     make the database FILE (which must not exist) from COPY, with
                                     every lock dropped and fencing tokens going on above N
  octostore restore --redis-url URL [--fence-floor N]
                                     the same, in place, for a Redis restored from a snapshot
  octostore bench [--target T] [--url URL] [--clients 32] [--duration 10s] [--contended] [--json]
                                     load a server (or etcd, or Redis) with acquire+release cycles
  octostore version                  print the version

Run "octostore serve -h", "octostore token create -h", "octostore token revoke -h",
"octostore backup -h", "octostore restore -h" or "octostore bench -h" for the flags.
`

// usageError is a command line that the flag package refused. The flag
// package has already printed the problem and the flags, so main only sets
// the exit status.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses args into fs; a refusal is a usageError (which wraps
// flag.ErrHelp for -h). What the flag package prints goes to fs's output
// (stderr) for a refused command line, and to stdout when -h asked for it.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	errOut := fs.Output()
	var printed bytes.Buffer
	fs.SetOutput(&printed)
	err := fs.Parse(args)
	fs.SetOutput(errOut)
	out := errOut
	if errors.Is(err, flag.ErrHelp) {
		out = stdout
	}
	if _, werr := out.Write(printed.Bytes()); werr != nil && err == nil {
		return werr
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// isHelp reports whether arg asks for help instead of naming a command.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// run executes one command line; it is main without the process around it,
// so tests can call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "token":
		if len(args) == 0 {
			fmt.Fprint(stderr, usage)
			return errors.New("token: want a subcommand: create or revoke")
		}
		if isHelp(args[0]) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		switch args[0] {
		case "create":
			return tokenCreate(ctx, args[1:], stdout, stderr)
		case "revoke":
			return tokenRevoke(ctx, args[1:], stdin, stdout, stderr)
		}
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("token: unknown subcommand %q (want create or revoke)", args[0])
	case "backup":
		return backupCmd(ctx, args, stdout, stderr)
	case "restore":
		return restoreCmd(ctx, args, stdout, stderr)
	case "bench":
		return bench(ctx, args, stdout, stderr)
	case "version":
		if len(args) == 1 && isHelp(args[0]) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		if len(args) > 0 {
			return fmt.Errorf("version: unexpected arguments %q", args)
		}
		fmt.Fprintln(stdout, "octostore", buildinfo.Version())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
