"""plans (named limits), tenants.plan_id and per-tenant overrides (tenants.max_sessions becomes the sessions
override: NULL = the plan's), quota_usage (per tenant per day, and per session), quota_warnings

Revision ID: 0016
Revises: 0013_campaigns
"""

from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0017"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_OVERRIDES = (
    ("max_messages_per_day", sa.Integer()),
    ("max_messages_per_month", sa.Integer()),
    ("max_campaign_recipients_per_month", sa.Integer()),
    ("max_media_bytes", sa.BigInteger()),
    ("max_api_requests_per_minute", sa.Integer()),
    ("max_team_seats", sa.Integer()),
    ("max_webhook_endpoints", sa.Integer()),
)
DEFAULT_SESSIONS = 10


def upgrade():
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("max_sessions", sa.Integer()),
        *[sa.Column(name, type_) for name, type_ in _OVERRIDES],
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("name", name="uq_plans_name"),
    )
    op.create_table(
        "quota_usage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_quota_usage_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("campaign_recipients", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "day", "session_id", name="uq_quota_usage_tenant_id_day_session_id"),
    )
    op.create_table(
        "quota_warnings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_quota_warnings_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("quota", sa.String(40), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "quota", "period", "level", name="uq_quota_warnings_tenant_id_quota_period_level"
        ),
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
        for name, type_ in _OVERRIDES:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.alter_column("max_sessions", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key("fk_tenants_plan_id_plans", "plans", ["plan_id"], ["id"], ondelete="SET NULL")
    # The default plan keeps today's default session limit and limits nothing else; every tenant gets it, and a
    # tenant's own session limit stays as its override unless it equals the plan's.
    op.execute(
        sa.text(
            "INSERT INTO plans (name, is_default, max_sessions, created_at, updated_at) "
            "VALUES ('Default', :yes, :sessions, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ).bindparams(yes=True, sessions=DEFAULT_SESSIONS)
    )
    op.execute(sa.text("UPDATE tenants SET plan_id = (SELECT id FROM plans WHERE name = 'Default')"))
    op.execute(sa.text("UPDATE tenants SET max_sessions = NULL WHERE max_sessions = :n").bindparams(n=DEFAULT_SESSIONS))


def downgrade():
    op.execute(
        sa.text(
            "UPDATE tenants SET max_sessions = COALESCE(max_sessions, "
            "(SELECT plans.max_sessions FROM plans WHERE plans.id = tenants.plan_id), :n)"
        ).bindparams(n=DEFAULT_SESSIONS)
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_constraint("fk_tenants_plan_id_plans", type_="foreignkey")
        batch_op.alter_column("max_sessions", existing_type=sa.Integer(), nullable=False)
        for name, _ in reversed(_OVERRIDES):
            batch_op.drop_column(name)
        batch_op.drop_column("plan_id")
    op.drop_table("quota_warnings")
    op.drop_table("quota_usage")
    op.drop_table("plans")
