"""a stored, rotatable signing secret per session for deliveries to its own webhook URL

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: existing sessions keep the secret derived from WAHA_WEBHOOK_SECRET until it is rotated.
    with op.batch_alter_table('waha_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_secret', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('waha_sessions', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret')
