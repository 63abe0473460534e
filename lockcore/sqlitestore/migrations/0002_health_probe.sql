-- 0002: one row that every health check (Store.Ping) rewrites through the
-- writer, so that a store whose writes cannot be stored (a full disk, a
-- file that cannot grow) is reported unavailable, not only one whose
-- writer is stuck. Nothing reads it.

CREATE TABLE health_probe (
	id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	at_ms INTEGER NOT NULL
);

INSERT INTO health_probe(id, at_ms) VALUES (1, 0);
