"""PostgreSQL schema migrations: an ordered list whose index + 1 is the schema version.

A shipped migration is never edited; add a new one. The version lives in the one-row table
``batonflow_schema_version`` of the schema the connection's ``search_path`` selects, so several
batonflow databases can share one PostgreSQL database, one schema each.

Migrations run under a transaction-scoped advisory lock, so workers starting together on an
empty database do not race to create the tables.
"""

from __future__ import annotations

import hashlib

VERSION_TABLE = "batonflow_schema_version"

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, journal, attempts, events, queues, and the trigger that wakes idle workers
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
        created_at      DOUBLE PRECISION NOT NULL,
        updated_at      DOUBLE PRECISION NOT NULL,
        started_at      DOUBLE PRECISION,
        finished_at     DOUBLE PRECISION,
        deadline        DOUBLE PRECISION,
        wake_at         DOUBLE PRECISION,
        owner           TEXT,
        lease_until     DOUBLE PRECISION,
        signal          BIGINT NOT NULL DEFAULT 0,
        activations     INTEGER NOT NULL DEFAULT 0,
        queue           TEXT,
        claim_id        TEXT
    ) WITH (fillfactor = 80);
    CREATE INDEX runs_pending ON runs ((COALESCE(wake_at, created_at))) WHERE status = 'pending';
    CREATE INDEX runs_waiting ON runs (wake_at) WHERE status = 'waiting';
    CREATE INDEX runs_running ON runs (lease_until) WHERE status = 'running';
    CREATE INDEX runs_by_status ON runs (status, created_at);
    CREATE INDEX runs_by_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX runs_by_created ON runs (created_at, id);
    CREATE INDEX runs_by_queue ON runs (queue, status) WHERE queue IS NOT NULL;
    CREATE INDEX runs_queue_starts ON runs (queue, started_at) WHERE queue IS NOT NULL;

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
        started_at  DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        wake_at     DOUBLE PRECISION,
        topic       TEXT,
        key         TEXT,
        child_id    TEXT,
        PRIMARY KEY (run_id, step_id)
    );
    CREATE INDEX steps_waiting_for_events ON steps (topic, key)
        WHERE status = 'pending' AND kind = 'event';

    CREATE TABLE attempts (
        id          BIGSERIAL PRIMARY KEY,
        run_id      TEXT NOT NULL,
        step_id     TEXT NOT NULL,
        attempt     INTEGER NOT NULL,
        started_at  DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION NOT NULL,
        error_json  TEXT NOT NULL,
        UNIQUE (run_id, step_id, attempt)
    );

    CREATE TABLE events (
        id            BIGSERIAL PRIMARY KEY,
        topic         TEXT NOT NULL,
        key           TEXT,
        run_id        TEXT,
        payload_json  TEXT NOT NULL,
        created_at    DOUBLE PRECISION NOT NULL,
        consumed_run  TEXT,
        consumed_step TEXT,
        token         TEXT UNIQUE
    );
    CREATE INDEX events_unconsumed ON events (topic, key, run_id) WHERE consumed_run IS NULL;
    CREATE INDEX events_by_run ON events (run_id);
    CREATE INDEX events_by_consumer ON events (consumed_run);

    CREATE FUNCTION batonflow_wake() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('batonflow_' || left(md5(TG_TABLE_SCHEMA), 16), '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_pending_insert AFTER INSERT ON runs FOR EACH ROW
        WHEN (NEW.status = 'pending') EXECUTE FUNCTION batonflow_wake();
    CREATE TRIGGER runs_pending_update AFTER UPDATE OF status ON runs FOR EACH ROW
        WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
        EXECUTE FUNCTION batonflow_wake();
    CREATE TRIGGER runs_queue_slot_freed AFTER UPDATE OF status ON runs FOR EACH ROW
        WHEN (OLD.status = 'running' AND NEW.status NOT IN ('running', 'pending')
              AND NEW.queue IS NOT NULL)
        EXECUTE FUNCTION batonflow_wake();
    """,
    # 2: governance: data subjects and starters of runs, the hash-chained audit trail (with a
    # one-row head; until migration 5 its row lock serialised appends), and generic records
    """
    ALTER TABLE runs ADD COLUMN subjects TEXT;
    ALTER TABLE runs ADD COLUMN started_by TEXT;
    CREATE TABLE run_subjects (
        subject TEXT NOT NULL,
        run_id  TEXT NOT NULL,
        PRIMARY KEY (subject, run_id)
    );

    CREATE TABLE audit (
        seq       BIGINT PRIMARY KEY,
        at        DOUBLE PRECISION NOT NULL,
        kind      TEXT NOT NULL,
        run_id    TEXT,
        step_id   TEXT,
        actor     TEXT,
        subjects  TEXT,
        data_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL,
        op        TEXT
    );
    CREATE INDEX audit_by_run ON audit (run_id) WHERE run_id IS NOT NULL;
    CREATE INDEX audit_by_time ON audit (at);
    CREATE INDEX audit_by_op ON audit (op) WHERE op IS NOT NULL;
    CREATE TABLE audit_head (
        only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
        seq      BIGINT NOT NULL,
        hash     TEXT NOT NULL
    );
    INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));

    CREATE TABLE records (
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        data_json  TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kind, key)
    );
    """,
    # 3: the audit trail is the change feed of `batonflow serve`: a NOTIFY on its own channel
    # (engines do not listen to it) wakes every process that follows the trail's head
    """
    CREATE FUNCTION batonflow_audit_appended() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('batonflow_audit_' || left(md5(TG_TABLE_SCHEMA), 16), '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER audit_appended AFTER INSERT ON audit FOR EACH STATEMENT
        EXECUTE FUNCTION batonflow_audit_appended();
    """,
    # 4: the console's runs list filters by workflow (status has runs_by_status), newest first,
    # paged by (created_at, id): one index range a page at any size
    """
    CREATE INDEX runs_by_workflow_created ON runs (workflow, created_at, id);
    """,
    # 5: appends no longer lock the chain's head. A writer inserts its entries unsealed (no
    # seq, prev_hash or hash) with an order key from a sequence (`ord`), its transaction id
    # (`txid`) and the database's time (`written`, to judge the sealing lag); a chainer seals
    # committed entries after commit, in (txid, ord) order, and assigns their chain position
    # `seq` (docs/design.md decision 96). Entries sealed before keep their seq, hashes and
    # positions; `ord` is their seq. The NOTIFY on insert goes: followers read sealed entries,
    # and the chainer notifies once per sealed batch (a NOTIFY takes a database-wide lock
    # held through COMMIT, which would serialise writers again).
    """
    ALTER TABLE audit DROP CONSTRAINT audit_pkey;
    ALTER TABLE audit ALTER COLUMN seq DROP NOT NULL,
        ALTER COLUMN prev_hash DROP NOT NULL,
        ALTER COLUMN hash DROP NOT NULL;
    CREATE UNIQUE INDEX audit_by_seq ON audit (seq);
    CREATE SEQUENCE audit_order;
    ALTER TABLE audit ADD COLUMN ord BIGINT, ADD COLUMN txid xid8,
        ADD COLUMN written TIMESTAMPTZ;
    ALTER TABLE audit ALTER COLUMN written SET DEFAULT now();
    UPDATE audit SET ord = seq;
    SELECT setval('audit_order', COALESCE((SELECT max(seq) FROM audit), 0) + 1, false);
    ALTER TABLE audit ALTER COLUMN ord SET DEFAULT nextval('audit_order'),
        ALTER COLUMN ord SET NOT NULL,
        ADD PRIMARY KEY (ord),
        ADD CONSTRAINT audit_sealed_whole CHECK (
            (seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL)
            AND (seq IS NOT NULL OR txid IS NOT NULL));
    ALTER SEQUENCE audit_order OWNED BY audit.ord;
    CREATE INDEX audit_unsealed ON audit (txid, ord) WHERE seq IS NULL;
    DROP TRIGGER audit_appended ON audit;
    DROP FUNCTION batonflow_audit_appended();
    """,
)


def audit_channel_for(schema: str) -> str:
    """The channel the trail's followers listen on: migration 3's trigger notified it on each
    insert; since migration 5 the chainer notifies it when it has sealed entries."""
    return "batonflow_audit_" + hashlib.md5(schema.encode()).hexdigest()[:16]


def channel_for(schema: str) -> str:
    """The LISTEN/NOTIFY channel of the batonflow tables in ``schema`` (as the trigger names it:
    one channel per schema, so databases sharing a PostgreSQL database do not wake each other)."""
    return "batonflow_" + hashlib.md5(schema.encode()).hexdigest()[:16]
