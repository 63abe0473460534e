package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// migrationFS holds the schema migrations. File NNNN_name.sql brings the
// database to PRAGMA user_version NNNN; versions start at 1 and have no gaps.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number and '_'", base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies, each in its own IMMEDIATE transaction, every migration
// newer than the database's user_version. The version is re-read inside the
// transaction, so processes opening the same file at once migrate it once.
// A database newer than this code is refused.
func migrate(ctx context.Context, c *sql.Conn) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := migrateOne(ctx, c, m, len(ms)); err != nil {
			return err
		}
	}
	return nil
}

func migrateOne(ctx context.Context, c *sql.Conn, m migration, latest int) (err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var current int
	if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return err
	}
	if current > latest {
		return fmt.Errorf("database schema version %d is newer than this program's %d", current, latest)
	}
	if current == 0 {
		// A new OctoStore database is empty until 0001 is applied (each
		// migration is one transaction); anything in it belongs to another
		// application, whose file must not be changed.
		var objects int
		if err := c.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!'").Scan(&objects); err != nil {
			return err
		}
		if objects > 0 {
			return fmt.Errorf("not an OctoStore database: it has no schema version but %d tables or indexes of another application; it was left unchanged (give a new file or an OctoStore database)", objects)
		}
	}
	if current >= m.version {
		_, err = c.ExecContext(ctx, "COMMIT")
		return err
	}
	if _, err := c.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := c.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.version)); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	_, err = c.ExecContext(ctx, "COMMIT")
	return err
}
