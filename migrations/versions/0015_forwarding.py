"""webhook_deliveries.leased_until (a batch of the forwarding drain holds the attempt until then) and sent_at (when
the attempt went out); due_at keeps the time the attempt was scheduled for

Revision ID: 0015
Revises: 0010_search_index
"""

from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0010_search_index"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    # Attempts queued by the one-job-per-attempt code carry a lease in due_at; they are due now.
    op.execute(sa.text("UPDATE webhook_deliveries SET due_at = created_at WHERE status = 'pending' AND attempt = 1"))


def downgrade():
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("sent_at")
        batch_op.drop_column("leased_until")
