"""waha_sessions: number health (WhatsApp's reach-out timelock and new-chat message capping)

Revision ID: 0014
Revises: 0009 (re-chained onto the newest head when merged)
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('waha_sessions', schema=None) as batch_op:
        # the last readings, as WAHA gave them: {"timelock": {...}, "capping": {...}}
        batch_op.add_column(sa.Column('limits', postgresql.JSONB().with_variant(sa.JSON(), "sqlite"),
                                      nullable=True))
        batch_op.add_column(sa.Column('limits_checked_at', sa.DateTime(timezone=True), nullable=True))
        # ok / warning / limited, from the readings; what the lists and banners show
        batch_op.add_column(sa.Column('limit_level', sa.String(16), nullable=True))
        # when WhatsApp takes messages to new contacts again (the send path reads it with the session)
        batch_op.add_column(sa.Column('new_contacts_blocked_until', sa.DateTime(timezone=True), nullable=True))
        # the level the tenant was told of in this episode (once per level, cleared when back to ok)
        batch_op.add_column(sa.Column('limit_told', sa.String(16), nullable=True))
        batch_op.add_column(sa.Column('limit_since', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('waha_sessions', schema=None) as batch_op:
        for column in ('limit_since', 'limit_told', 'new_contacts_blocked_until', 'limit_level',
                       'limits_checked_at', 'limits'):
            batch_op.drop_column(column)
