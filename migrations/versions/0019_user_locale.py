"""users.language (the portal's language for the user; null: the browser's) and users.timezone (an IANA zone;
null: the tenant's time zone, else UTC)

Revision ID: 0019
Revises: 0013_campaigns
"""

from alembic import op
import sqlalchemy as sa

revision = "0019"
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("language")
