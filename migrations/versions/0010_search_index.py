"""pages that stay flat: a trigram index for text search of messages (PostgreSQL), the day's message counts
from the (tenant, created_at, id) index alone (direction and status included, PostgreSQL), and a partial index
of failed webhook deliveries for the dashboard

Revision ID: 0010_search_index
Revises: 0014 (re-chained onto the newest head when merged)

Every index here is a plain CREATE INDEX, so it can also be made on a partitioned parent table. On a large
messages table the two message indexes take a while to build and hold writes to the table meanwhile; see
docs/deploy.md for building them beforehand with CREATE INDEX CONCURRENTLY.
"""
from alembic import op
import sqlalchemy as sa

revision = '0010_search_index'
down_revision = '0014'
branch_labels = None
depends_on = None

FAILED = "status IN ('failed', 'dead')"


def _index_exists(name):
    return op.get_bind().execute(sa.text('SELECT to_regclass(:n) IS NOT NULL'), {'n': name}).scalar()


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        if not _index_exists('ix_messages_body_trgm'):  # may have been built beforehand, concurrently
            op.create_index('ix_messages_body_trgm', 'messages', ['body'], unique=False,
                            postgresql_using='gin', postgresql_ops={'body': 'gin_trgm_ops'})
        op.drop_index('ix_messages_tenant_created', table_name='messages')
        op.create_index('ix_messages_tenant_created', 'messages', ['tenant_id', 'created_at', 'id'], unique=False,
                        postgresql_include=['direction', 'status'])
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_failed', ['tenant_id', 'created_at'], unique=False,
                              postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED))


def downgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_failed')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_messages_tenant_created', table_name='messages')
        op.create_index('ix_messages_tenant_created', 'messages', ['tenant_id', 'created_at', 'id'], unique=False)
        op.drop_index('ix_messages_body_trgm', table_name='messages')
        # the pg_trgm extension stays: other objects of the database may use it
