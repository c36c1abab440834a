"""messages.reply_to_id (the message a send quotes), tenants.read_receipts (blue ticks on WhatsApp when a chat
is opened in the portal)

Revision ID: 0009
Revises: 0007 (to be re-chained onto 0008, the chats tables, when both are merged)
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_to_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.create_foreign_key('fk_messages_reply_to_id_messages', 'messages', ['reply_to_id'], ['id'],
                                    ondelete='SET NULL')
        # deleting a message looks up the replies to it (ON DELETE SET NULL); few messages are replies
        batch_op.create_index('ix_messages_reply_to', ['reply_to_id'], unique=False,
                              postgresql_where=sa.text('reply_to_id IS NOT NULL'),
                              sqlite_where=sa.text('reply_to_id IS NOT NULL'))
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('read_receipts', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('read_receipts')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_reply_to')
        batch_op.drop_constraint('fk_messages_reply_to_id_messages', type_='foreignkey')
        batch_op.drop_column('reply_to_id')
