"""a partial index of failed sends (tenant, created_at) for the dashboard's count of the day's failures

Revision ID: 0020
Revises: 0019

A plain CREATE INDEX, so it can also be made on the partitioned messages table of PostgreSQL (each month's
partition gets its own, and partitions made later inherit it). It holds only failed sends, so it is small, but
building it reads the whole table and holds writes to messages meanwhile; on a large table build it beforehand
without blocking (docs/deploy.md) and the migration skips it.
"""

from alembic import op
import sqlalchemy as sa

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FAILED_SEND = "direction = 'out' AND status = 'ERROR'"


def _index_exists(name):
    return op.get_bind().execute(sa.text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar()


def upgrade():
    if op.get_bind().dialect.name == "postgresql" and _index_exists("ix_messages_tenant_failed"):
        return  # built beforehand, partition by partition, without blocking writes
    op.create_index(
        "ix_messages_tenant_failed",
        "messages",
        ["tenant_id", "created_at"],
        unique=False,
        postgresql_where=sa.text(FAILED_SEND),
        sqlite_where=sa.text(FAILED_SEND),
    )


def downgrade():
    op.drop_index("ix_messages_tenant_failed", table_name="messages")
