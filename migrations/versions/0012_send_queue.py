"""send_queue (every message the portal sends later or paced), send_queue_sessions (a session's queue: paused,
the next campaign slot) and outreach_settings (a tenant's time zone, quiet hours and campaign gap)

Revision ID: 0012_send_queue
Revises: 0011 (the head after merging main)
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0012_send_queue"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OPEN = "state IN ('queued', 'sending')"


def upgrade():
    op.create_table(
        "send_queue",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_send_queue_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column(
            "session_id",
            sa.String(36),
            sa.ForeignKey("waha_sessions.id", ondelete="CASCADE", name="fk_send_queue_session_id_waha_sessions"),
            nullable=False,
        ),
        sa.Column("lane", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("media", JSONType, nullable=True),
        sa.Column("reply_to", sa.String(255), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled", sa.Boolean(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.String(200), nullable=True),
        sa.Column("origin", sa.String(32), nullable=True),
        sa.Column("origin_id", BigId, nullable=True),
        sa.Column("typing", sa.Boolean(), nullable=False),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_type", sa.String(16), nullable=False),
        sa.Column("created_by_id", sa.String(64), nullable=True),
        sa.Column("created_by_label", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_send_queue"),
    )
    op.create_index(
        "ix_send_queue_session_open",
        "send_queue",
        ["session_id", "lane", "not_before", "id"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    op.create_index(
        "ix_send_queue_open_due",
        "send_queue",
        ["state", "not_before"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    op.create_index("ix_send_queue_tenant_scheduled", "send_queue", ["tenant_id", "scheduled", "id"])
    op.create_index("ix_send_queue_origin", "send_queue", ["origin", "origin_id"])

    op.create_table(
        "send_queue_sessions",
        sa.Column(
            "session_id",
            sa.String(36),
            sa.ForeignKey(
                "waha_sessions.id", ondelete="CASCADE", name="fk_send_queue_sessions_session_id_waha_sessions"
            ),
            nullable=False,
        ),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_send_queue_sessions_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_by", sa.String(255), nullable=True),
        sa.Column("next_campaign_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_send_queue_sessions"),
    )
    op.create_index("ix_send_queue_sessions_tenant_id", "send_queue_sessions", ["tenant_id"])

    op.create_table(
        "outreach_settings",
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_outreach_settings_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("gap_min", sa.Float(), nullable=False),
        sa.Column("gap_max", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_outreach_settings"),
    )


def downgrade():
    op.drop_table("outreach_settings")
    op.drop_index("ix_send_queue_sessions_tenant_id", table_name="send_queue_sessions")
    op.drop_table("send_queue_sessions")
    op.drop_index("ix_send_queue_origin", table_name="send_queue")
    op.drop_index("ix_send_queue_tenant_scheduled", table_name="send_queue")
    op.drop_index("ix_send_queue_open_due", table_name="send_queue")
    op.drop_index("ix_send_queue_session_open", table_name="send_queue")
    op.drop_table("send_queue")
