"""SQLite schema migrations: an ordered list whose index + 1 is the schema version.

A shipped migration is never edited; add a new one. The version lives in ``PRAGMA user_version``.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, journal, attempts, events
    """
    CREATE TABLE runs (
        id              TEXT PRIMARY KEY,
        workflow        TEXT NOT NULL,
        workflow_ref    TEXT,
        status          TEXT NOT NULL,
        input_json      TEXT NOT NULL,
        output_json     TEXT,
        error_json      TEXT,
        idempotency_key TEXT UNIQUE,
        parent_id       TEXT,
        parent_step     TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        started_at      REAL,
        finished_at     REAL,
        deadline        REAL,
        wake_at         REAL,
        owner           TEXT,
        lease_until     REAL,
        signal          INTEGER NOT NULL DEFAULT 0,
        activations     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_status ON runs (status, wake_at);
    CREATE INDEX runs_by_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX runs_by_created ON runs (created_at);

    CREATE TABLE steps (
        run_id      TEXT NOT NULL,
        step_id     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        name        TEXT NOT NULL,
        status      TEXT NOT NULL,
        input_json  TEXT,
        output_json TEXT,
        error_json  TEXT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        started_at  REAL,
        finished_at REAL,
        wake_at     REAL,
        topic       TEXT,
        key         TEXT,
        child_id    TEXT,
        PRIMARY KEY (run_id, step_id)
    ) WITHOUT ROWID;
    CREATE INDEX steps_waiting_for_events ON steps (topic, key)
        WHERE status = 'pending' AND kind = 'event';

    CREATE TABLE attempts (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL,
        step_id     TEXT NOT NULL,
        attempt     INTEGER NOT NULL,
        started_at  REAL NOT NULL,
        finished_at REAL NOT NULL,
        error_json  TEXT NOT NULL
    );
    CREATE INDEX attempts_by_run ON attempts (run_id, step_id);

    CREATE TABLE events (
        id            INTEGER PRIMARY KEY,
        topic         TEXT NOT NULL,
        key           TEXT,
        run_id        TEXT,
        payload_json  TEXT NOT NULL,
        created_at    REAL NOT NULL,
        consumed_run  TEXT,
        consumed_step TEXT
    );
    CREATE INDEX events_unconsumed ON events (topic, key, run_id) WHERE consumed_run IS NULL;
    CREATE INDEX events_by_run ON events (run_id);
    CREATE INDEX events_by_consumer ON events (consumed_run);
    """,
    # 2: named queues (their limits are enforced when runs are claimed)
    """
    ALTER TABLE runs ADD COLUMN queue TEXT;
    CREATE INDEX runs_by_queue ON runs (queue, status) WHERE queue IS NOT NULL;
    CREATE INDEX runs_queue_starts ON runs (queue, started_at) WHERE queue IS NOT NULL;
    """,
    # 3: governance: data subjects and starters of runs, the hash-chained audit trail, and
    # generic records (identities, token hashes, connector switches, subject keys)
    """
    ALTER TABLE runs ADD COLUMN subjects TEXT;
    ALTER TABLE runs ADD COLUMN started_by TEXT;
    CREATE TABLE run_subjects (
        subject TEXT NOT NULL,
        run_id  TEXT NOT NULL,
        PRIMARY KEY (subject, run_id)
    ) WITHOUT ROWID;

    CREATE TABLE audit (
        seq       INTEGER PRIMARY KEY,
        at        REAL NOT NULL,
        kind      TEXT NOT NULL,
        run_id    TEXT,
        step_id   TEXT,
        actor     TEXT,
        subjects  TEXT,
        data_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE INDEX audit_by_run ON audit (run_id) WHERE run_id IS NOT NULL;
    CREATE INDEX audit_by_time ON audit (at);

    CREATE TABLE records (
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        data_json  TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    """,
    # 4: the console's runs list filters by status or workflow, newest first, paged by
    # (created_at, id): an index for each keeps a page one index range at any size
    """
    CREATE INDEX runs_by_status_created ON runs (status, created_at, id);
    CREATE INDEX runs_by_workflow_created ON runs (workflow, created_at, id);
    """,
)
