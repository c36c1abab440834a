"""webhook_events.raw (the body as received when the payload had to be cleaned), a partial index of
messages whose media file is still to be downloaded, an index of deliveries by session (session delete)

Revision ID: 0007
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw', sa.Text(), nullable=True))
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_session', ['session_id'], unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_media_pending', ['id'], unique=False,
                              postgresql_where=sa.text("(media ->> 'status') = 'pending'"),
                              sqlite_where=sa.text("json_extract(media, '$.status') = 'pending'"))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_media_pending')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_session')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('raw')
