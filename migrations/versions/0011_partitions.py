"""messages and webhook_events partitioned by month on PostgreSQL (RANGE on created_at / received_at); their
global unique keys move to small key tables kept by triggers (see docs/architecture.md, "Partitioned tables")

On PostgreSQL every PRIMARY KEY or UNIQUE constraint of a partitioned table must contain the partition key, so:
- the primary keys become (id, created_at) and (id, received_at); ids stay unique (one sequence each);
- UNIQUE (tenant_id, idempotency_key) and UNIQUE (session_id, waha_message_id) of messages, and UNIQUE (event_id)
  of webhook_events, are kept as the primary keys of message_idempotency_keys, message_waha_ids and
  webhook_event_keys; triggers on the partitioned tables write those rows in the same statement (a duplicate
  message key fails the statement as before, a repeated event id skips the row as ON CONFLICT DO NOTHING did);
- the foreign keys that pointed at messages.id / webhook_events.id (chats.last_message_id,
  messages.reply_to_id, webhook_deliveries.webhook_event_id) are dropped: a statement trigger sets the message
  references to NULL when messages are deleted, and retention does it before it drops a partition.

Every index on the tables when this runs is read from the catalog and recreated on the partitioned table (an
index a later or parallel migration added, such as a trigram index for search, comes along). The rows are copied
in the migration's transaction: the tables are locked for writes meanwhile. SQLite keeps plain tables.

Revision ID: 0011
Revises: 0015 (runs after any migration: the indexes are read from the catalog)
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = {'messages': 'created_at', 'webhook_events': 'received_at'}
AHEAD_MONTHS = 2
# The unique constraints that become key tables: table -> constraint columns -> (key table, index kept on the table)
UNIQUES = {
    'messages': {
        ('session_id', 'waha_message_id'): ('message_waha_ids', 'ix_messages_session_waha_id'),
        ('tenant_id', 'idempotency_key'): ('message_idempotency_keys', 'ix_messages_tenant_idempotency'),
    },
    'webhook_events': {('event_id',): ('webhook_event_keys', 'ix_webhook_events_event_id')},
}
# Foreign keys into the two tables: (table, column, referenced table, constraint name, ON DELETE)
REFERENCES = [
    ('chats', 'last_message_id', 'messages', 'fk_chats_last_message_id_messages', 'SET NULL'),
    ('messages', 'reply_to_id', 'messages', 'fk_messages_reply_to_id_messages', 'SET NULL'),
    ('webhook_deliveries', 'webhook_event_id', 'webhook_events',
     'fk_webhook_deliveries_webhook_event_id_webhook_events', 'SET NULL'),
]

KEY_TABLES_SQL = """
CREATE TABLE message_idempotency_keys AS
    SELECT tenant_id, idempotency_key, id AS message_id, created_at FROM messages WHERE idempotency_key IS NOT NULL;
ALTER TABLE message_idempotency_keys
    ALTER COLUMN tenant_id SET NOT NULL, ALTER COLUMN idempotency_key SET NOT NULL,
    ALTER COLUMN message_id SET NOT NULL, ALTER COLUMN created_at SET NOT NULL,
    ADD CONSTRAINT pk_message_idempotency_keys PRIMARY KEY (tenant_id, idempotency_key),
    ADD CONSTRAINT fk_message_idempotency_keys_tenant_id_tenants FOREIGN KEY (tenant_id)
        REFERENCES tenants (id) ON DELETE CASCADE;
CREATE INDEX ix_message_idempotency_keys_created_at ON message_idempotency_keys (created_at);

CREATE TABLE message_waha_ids AS
    SELECT session_id, waha_message_id, id AS message_id, created_at FROM messages WHERE waha_message_id IS NOT NULL;
ALTER TABLE message_waha_ids
    ALTER COLUMN session_id SET NOT NULL, ALTER COLUMN waha_message_id SET NOT NULL,
    ALTER COLUMN message_id SET NOT NULL, ALTER COLUMN created_at SET NOT NULL,
    ADD CONSTRAINT pk_message_waha_ids PRIMARY KEY (session_id, waha_message_id),
    ADD CONSTRAINT fk_message_waha_ids_session_id_waha_sessions FOREIGN KEY (session_id)
        REFERENCES waha_sessions (id) ON DELETE CASCADE;
CREATE INDEX ix_message_waha_ids_created_at ON message_waha_ids (created_at);

CREATE TABLE webhook_event_keys AS SELECT event_id, received_at FROM webhook_events;
ALTER TABLE webhook_event_keys
    ALTER COLUMN event_id SET NOT NULL, ALTER COLUMN received_at SET NOT NULL,
    ADD CONSTRAINT pk_webhook_event_keys PRIMARY KEY (event_id);
CREATE INDEX ix_webhook_event_keys_received_at ON webhook_event_keys (received_at);

-- A message's keys are written with the row: a key another message holds fails the statement (unique_violation
-- on the key table), exactly as the unique constraints on messages did.
CREATE FUNCTION portal_messages_keys_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.idempotency_key IS NOT NULL THEN
        INSERT INTO message_idempotency_keys (tenant_id, idempotency_key, message_id, created_at)
        VALUES (NEW.tenant_id, NEW.idempotency_key, NEW.id, NEW.created_at);
    END IF;
    IF NEW.waha_message_id IS NOT NULL THEN
        INSERT INTO message_waha_ids (session_id, waha_message_id, message_id, created_at)
        VALUES (NEW.session_id, NEW.waha_message_id, NEW.id, NEW.created_at);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER messages_keys_insert BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION portal_messages_keys_insert();

CREATE FUNCTION portal_messages_keys_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.idempotency_key) IS DISTINCT FROM (OLD.tenant_id, OLD.idempotency_key) THEN
        DELETE FROM message_idempotency_keys
        WHERE tenant_id = OLD.tenant_id AND idempotency_key = OLD.idempotency_key AND message_id = OLD.id;
        IF NEW.idempotency_key IS NOT NULL THEN
            INSERT INTO message_idempotency_keys (tenant_id, idempotency_key, message_id, created_at)
            VALUES (NEW.tenant_id, NEW.idempotency_key, NEW.id, NEW.created_at);
        END IF;
    END IF;
    IF (NEW.session_id, NEW.waha_message_id) IS DISTINCT FROM (OLD.session_id, OLD.waha_message_id) THEN
        DELETE FROM message_waha_ids
        WHERE session_id = OLD.session_id AND waha_message_id = OLD.waha_message_id AND message_id = OLD.id;
        IF NEW.waha_message_id IS NOT NULL THEN
            INSERT INTO message_waha_ids (session_id, waha_message_id, message_id, created_at)
            VALUES (NEW.session_id, NEW.waha_message_id, NEW.id, NEW.created_at);
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_keys_update AFTER UPDATE OF tenant_id, session_id, idempotency_key, waha_message_id
    ON messages FOR EACH ROW EXECUTE FUNCTION portal_messages_keys_update();

-- Deleted messages free their keys and are unlinked from the chats and replies that pointed at them (what the
-- foreign keys' ON DELETE SET NULL did). Retention's partition drop does the same itself (no trigger fires).
CREATE FUNCTION portal_messages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_idempotency_keys k USING gone g
    WHERE k.tenant_id = g.tenant_id AND k.idempotency_key = g.idempotency_key AND k.message_id = g.id;
    DELETE FROM message_waha_ids k USING gone g
    WHERE k.session_id = g.session_id AND k.waha_message_id = g.waha_message_id AND k.message_id = g.id;
    UPDATE chats c SET last_message_id = NULL FROM gone g WHERE c.last_message_id = g.id;
    UPDATE messages m SET reply_to_id = NULL FROM gone g WHERE m.reply_to_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_deleted AFTER DELETE ON messages REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION portal_messages_deleted();

-- An event id seen before skips the row (INSERT ... RETURNING leaves it out), as ON CONFLICT DO NOTHING did.
CREATE FUNCTION portal_webhook_events_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_keys (event_id, received_at) VALUES (NEW.event_id, NEW.received_at)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_events_key BEFORE INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION portal_webhook_events_key();

CREATE FUNCTION portal_webhook_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhook_event_keys k USING gone g WHERE k.event_id = g.event_id AND k.received_at = g.received_at;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_events_deleted AFTER DELETE ON webhook_events REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION portal_webhook_events_deleted();
"""

DROP_KEY_TABLES_SQL = """
DROP TRIGGER IF EXISTS messages_keys_insert ON messages;
DROP TRIGGER IF EXISTS messages_keys_update ON messages;
DROP TRIGGER IF EXISTS messages_deleted ON messages;
DROP TRIGGER IF EXISTS webhook_events_key ON webhook_events;
DROP TRIGGER IF EXISTS webhook_events_deleted ON webhook_events;
DROP FUNCTION IF EXISTS portal_messages_keys_insert();
DROP FUNCTION IF EXISTS portal_messages_keys_update();
DROP FUNCTION IF EXISTS portal_messages_deleted();
DROP FUNCTION IF EXISTS portal_webhook_events_key();
DROP FUNCTION IF EXISTS portal_webhook_events_deleted();
DROP TABLE IF EXISTS message_idempotency_keys;
DROP TABLE IF EXISTS message_waha_ids;
DROP TABLE IF EXISTS webhook_event_keys;
"""


def _rows(sql, **params):
    return op.get_bind().execute(sa.text(sql), params).all()


def _plain_indexes(table):
    """(name, definition) of every index on `table` that no constraint owns (those are rebuilt on their own)."""
    return _rows(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = CAST(:t AS regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname",
        t=table,
    )


def _constraints(table, kind):
    """(name, definition) of the table's constraints of a kind ('f' foreign keys, 'u' unique)."""
    return _rows(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass) AND contype = :k ORDER BY conname",
        t=table,
        k=kind,
    )


def _unique_columns(table):
    return {
        name: tuple(row[0] for row in _rows(
            "SELECT a.attname FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attnum = k.attnum WHERE c.conname = :c AND a.attrelid = c.conrelid "
            "AND c.conrelid = CAST(:t AS regclass) ORDER BY k.n",
            c=name,
            t=table,
        ))
        for name, _ in _constraints(table, 'u')
    }


def _month(value):
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def _next(month):
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _create_partitions(parent, table, column):
    """One partition per month from the oldest row's month to AHEAD_MONTHS after this one."""
    oldest = op.get_bind().execute(sa.text(f'SELECT min({column}) FROM {table}')).scalar()
    now = datetime.now(UTC)
    month = _month(min(oldest, now) if oldest is not None else now)
    last = _month(now)
    for _ in range(AHEAD_MONTHS):
        last = _next(last)
    while month <= last:
        upper = _next(month)
        op.execute(
            f"CREATE TABLE {table}_p{month:%Y%m} PARTITION OF {parent} "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
        )
        month = upper


def _rebuild(table, new_definition, primary_key, *, partitions_column=None):
    """Copy `table` into a new table (partitioned or plain), swap the names, and recreate its indexes and
    foreign keys from the catalog as they were; the id sequence moves to the new table."""
    indexes = _plain_indexes(table)
    foreign_keys = _constraints(table, 'f')
    work = f'{table}__new'
    op.execute(
        f'CREATE TABLE {work} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE '
        f'INCLUDING COMMENTS) {new_definition}'
    )
    op.execute(f'ALTER TABLE {work} ADD CONSTRAINT {work}_pkey PRIMARY KEY ({primary_key})')
    if partitions_column:
        _create_partitions(work, table, partitions_column)
    op.execute(f'INSERT INTO {work} SELECT * FROM {table}')
    sequence = op.get_bind().execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {'t': table}).scalar()
    if sequence:
        op.execute(f'ALTER SEQUENCE {sequence} OWNED BY {work}.id')
    op.execute(f'DROP TABLE {table}')
    op.execute(f'ALTER TABLE {work} RENAME TO {table}')
    op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT {work}_pkey TO pk_{table}')
    for _name, definition in indexes:
        op.execute(definition.replace(' ON ONLY ', ' ON '))
    for name, definition in foreign_keys:
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT {name} {definition}')


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite keeps plain tables, unique constraints and row deletes
    for table, column, _target, name, _action in REFERENCES:
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}')
    for table, key in TABLES.items():
        uniques = _unique_columns(table)
        unknown = {name: cols for name, cols in uniques.items() if cols not in UNIQUES[table]}
        if unknown:
            raise RuntimeError(f'{table} has unique constraints this migration does not know how to keep: {unknown}')
        for name in uniques:
            op.execute(f'ALTER TABLE {table} DROP CONSTRAINT {name}')
        _rebuild(table, f'PARTITION BY RANGE ({key})', f'id, {key}', partitions_column=key)
        for columns, (_key_table, index) in UNIQUES[table].items():
            where = ' WHERE idempotency_key IS NOT NULL' if 'idempotency_key' in columns else ''
            op.execute(f'CREATE INDEX {index} ON {table} ({", ".join(columns)}){where}')
    op.execute(KEY_TABLES_SQL)


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(DROP_KEY_TABLES_SQL)
    for table in TABLES:
        for _columns, (_key_table, index) in UNIQUES[table].items():
            op.execute(f'DROP INDEX IF EXISTS {index}')
        _rebuild(table, '', 'id')
        for columns in UNIQUES[table]:
            name = f'uq_{table}_{"_".join(columns)}'
            op.execute(f'ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE ({", ".join(columns)})')
    for table, column, target, name, action in REFERENCES:
        # references to rows that retention dropped with their partition point nowhere: cleared first
        op.execute(
            f'UPDATE {table} SET {column} = NULL WHERE {column} IS NOT NULL '
            f'AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.id = {table}.{column})'
        )
        op.execute(
            f'ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target} (id) '
            f'ON DELETE {action}'
        )
