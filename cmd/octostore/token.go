package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/octostore/octostore/lockcore"
)

// tokenCreate creates the account --login if needed and prints one new token
// on one line, nothing else, so it can be used in scripts. When the SQLite
// database did not exist it creates it, and says so on stderr.
func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	login := fs.String("login", "", "account login (created if it does not exist)")
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token create: unexpected arguments %q", fs.Args())
	}
	if *login == "" {
		return errors.New("token create: --login is required")
	}
	if err := lockcore.ValidateLogin(*login); err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	store, _, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if sf.created {
		// Most likely run in the wrong directory: say where the token went.
		fmt.Fprintf(stderr, "octostore: created a new database %s; the server must use the same --db\n", sf.db)
	}
	acct, _, err := store.EnsureAccount(ctx, *login)
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	token, hash := lockcore.NewToken()
	if err := store.AddToken(ctx, acct.ID, hash); err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// tokenRevoke revokes the token given as the argument, or read from stdin
// when the argument is absent or "-" (so it need not appear in ps output or
// shell history); with --account, every token of that account instead. A
// SQLite database that does not exist is an error, not a new empty one.
func tokenRevoke(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	account := fs.String("account", "", "revoke every token of this account id (the access log's account_id) instead of one token")
	sf := storeFlags{existing: true}
	sf.register(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *account != "" {
		if fs.NArg() > 0 {
			return errors.New("token revoke: give --account or a token, not both")
		}
		return revokeAccount(ctx, &sf, *account, stdout)
	}
	var token string
	switch {
	case fs.NArg() > 1:
		return fmt.Errorf("token revoke: want one token, got %d arguments (the store flags go before the token)", fs.NArg())
	case fs.NArg() == 1 && fs.Arg(0) != "-":
		token = fs.Arg(0)
	default:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("token revoke: read token from stdin: %w", err)
		}
		token = strings.TrimSpace(line)
	}
	hash, err := lockcore.ParseToken(token)
	if err != nil {
		return fmt.Errorf("token revoke: %w", err)
	}
	store, _, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.RevokeToken(ctx, hash); err != nil {
		if errors.Is(err, lockcore.ErrNotFound) {
			return errors.New("token revoke: no such token")
		}
		return fmt.Errorf("token revoke: %w", err)
	}
	_, err = fmt.Fprintln(stdout, "revoked")
	return err
}

// revokeAccount revokes every token of the account id, so that a leaked
// token, and any token it was rotated to, stops working everywhere at once.
func revokeAccount(ctx context.Context, sf *storeFlags, id string, stdout io.Writer) error {
	store, _, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	at, ok := store.(lockcore.AccountTokens)
	if !ok {
		return fmt.Errorf("token revoke: this store (%T) cannot revoke an account's tokens", store)
	}
	acct, err := store.AccountByID(ctx, id)
	if errors.Is(err, lockcore.ErrNotFound) {
		return fmt.Errorf("token revoke: no account %q", id)
	}
	if err != nil {
		return fmt.Errorf("token revoke: %w", err)
	}
	n, err := at.RevokeAccountTokens(ctx, id)
	if err != nil {
		return fmt.Errorf("token revoke: %d tokens of account %s revoked, then: %w", n, id, err)
	}
	noun := "tokens"
	if n == 1 {
		noun = "token"
	}
	_, err = fmt.Fprintf(stdout, "revoked %d %s of account %s (login %s)\n", n, noun, id, acct.Login)
	return err
}
