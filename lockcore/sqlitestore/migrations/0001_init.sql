-- 0001: accounts, tokens, per-account fencing counters and locks.
--
-- Times are Unix milliseconds of the store's clock. A lock row whose
-- expires_at_ms is not after "now" is free and may be overwritten or deleted.

CREATE TABLE accounts (
	id            TEXT    NOT NULL PRIMARY KEY,
	login         TEXT    NOT NULL,
	github_id     INTEGER UNIQUE,          -- NULL for operator-made accounts
	created_at_ms INTEGER NOT NULL
);

-- Operator-made accounts are found by login; GitHub accounts by github_id.
CREATE UNIQUE INDEX accounts_operator_login ON accounts(login) WHERE github_id IS NULL;

-- Only the SHA-256 of a token is ever stored.
CREATE TABLE tokens (
	hash          BLOB    NOT NULL PRIMARY KEY,
	account_id    TEXT    NOT NULL REFERENCES accounts(id),
	created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX tokens_account ON tokens(account_id);

-- One fencing counter per account namespace, incremented in the same
-- transaction as every new lease and never reset or decremented. It is kept
-- apart from accounts so that a namespace's counter exists as soon as its
-- first lock does.
CREATE TABLE fences (
	account_id TEXT    NOT NULL PRIMARY KEY,
	fence      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE locks (
	account_id    TEXT    NOT NULL,
	name          TEXT    NOT NULL,
	lease_id      TEXT    NOT NULL,
	fence         INTEGER NOT NULL,
	expires_at_ms INTEGER NOT NULL,
	ttl_ms        INTEGER NOT NULL,
	metadata      TEXT,
	PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

-- Counting an account's unexpired locks for the quota.
CREATE INDEX locks_account_expiry ON locks(account_id, expires_at_ms);
