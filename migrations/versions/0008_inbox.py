"""the shared inbox: chats (one row per conversation, kept by event processing), contacts, chat notes and quick
replies; chats and contacts are built from the messages already stored

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _where(condition):
    return {'postgresql_where': sa.text(condition), 'sqlite_where': sa.text(condition)}


def upgrade():
    op.create_table('chats',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('chat_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('last_message_id', BIG_ID, nullable=True),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_preview', sa.String(length=200), nullable=True),
    sa.Column('last_kind', sa.String(length=16), nullable=True),
    sa.Column('last_from_me', sa.Boolean(), nullable=True),
    sa.Column('last_status', sa.String(length=10), nullable=True),
    sa.Column('unread_count', sa.Integer(), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_chats_assignee_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['last_message_id'], ['messages.id'], name=op.f('fk_chats_last_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['session_id'], ['waha_sessions.id'], name=op.f('fk_chats_session_id_waha_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_chats_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chats')),
    sa.UniqueConstraint('session_id', 'chat_id', name=op.f('uq_chats_session_id_chat_id'))
    )
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.create_index('ix_chats_tenant_activity', ['tenant_id', 'last_activity_at', 'id'], unique=False)
        batch_op.create_index('ix_chats_session_activity', ['session_id', 'last_activity_at', 'id'], unique=False)
        batch_op.create_index('ix_chats_open', ['tenant_id', 'last_activity_at', 'id'], unique=False,
                              **_where("status = 'open'"))
        batch_op.create_index('ix_chats_unread', ['tenant_id', 'last_activity_at', 'id'], unique=False,
                              **_where('unread_count > 0'))
        batch_op.create_index('ix_chats_assignee', ['tenant_id', 'assignee_id', 'last_activity_at', 'id'],
                              unique=False, **_where('assignee_id IS NOT NULL'))
        batch_op.create_index('ix_chats_unassigned', ['tenant_id', 'last_activity_at', 'id'], unique=False,
                              **_where("assignee_id IS NULL AND status = 'open'"))
        batch_op.create_index('ix_chats_last_message', ['last_message_id'], unique=False)

    op.create_table('contacts',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.String(length=128), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('lid', sa.String(length=64), nullable=True),
    sa.Column('saved_name', sa.String(length=200), nullable=True),
    sa.Column('push_name', sa.String(length=200), nullable=True),
    sa.Column('avatar_key', sa.String(length=255), nullable=True),
    sa.Column('avatar_state', sa.String(length=10), nullable=True),
    sa.Column('avatar_fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_message_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tags', JSON, nullable=False),
    sa.Column('wa_exists', sa.Boolean(), nullable=True),
    sa.Column('exists_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_contacts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('tenant_id', 'chat_id', name=op.f('uq_contacts_tenant_id_chat_id'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_tenant', ['tenant_id', 'id'], unique=False)

    op.create_table('chat_notes',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', BIG_ID, nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author_label', sa.String(length=254), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_chat_notes_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_chat_notes_chat_id_chats'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_chat_notes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_notes'))
    )
    with op.batch_alter_table('chat_notes', schema=None) as batch_op:
        batch_op.create_index('ix_chat_notes_chat_created', ['chat_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_chat_notes_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('quick_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('shortcut', sa.String(length=40), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_quick_replies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quick_replies')),
    sa.UniqueConstraint('tenant_id', 'shortcut', name=op.f('uq_quick_replies_tenant_id_shortcut'))
    )

    _backfill()


# What the preview of a stored message says, per dialect (the same rule as services.inbox.upkeep.preview_of).
_JSON_TEXT = {
    'postgresql': "({col} ->> '{key}')",
    'sqlite': "json_extract({col}, '$.{key}')",
}
_JSON_HAS = {
    'postgresql': "(metadata -> 'waha' -> '{key}') IS NOT NULL",
    'sqlite': "json_extract(metadata, '$.waha.{key}') IS NOT NULL",
}


def _backfill():
    """One INSERT ... SELECT each: a chat per (session, chat id) showing its newest message, a contact per
    (tenant, person) with the times of its first and last message. Unread counts start at 0."""
    dialect = op.get_bind().dialect.name
    text = _JSON_TEXT.get(dialect, _JSON_TEXT['sqlite'])
    has = _JSON_HAS.get(dialect, _JSON_HAS['sqlite'])
    mimetype = text.format(col='media', key='mimetype')
    kind = (
        "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
        f"WHEN media IS NOT NULL THEN COALESCE({text.format(col='media', key='kind')}, "
        f"CASE WHEN {mimetype} LIKE 'image/%' THEN 'image' WHEN {mimetype} LIKE 'audio/%' THEN 'audio' "
        f"WHEN {mimetype} LIKE 'video/%' THEN 'video' ELSE 'document' END) "
        f"WHEN {has.format(key='location')} THEN 'location' "
        f"WHEN {has.format(key='vcards')} THEN 'vcard' ELSE 'text' END"
    )
    op.execute(
        "INSERT INTO chats (tenant_id, session_id, chat_id, last_message_id, last_activity_at, last_preview, "
        "last_kind, last_from_me, last_status, unread_count, status, created_at, updated_at) "
        "SELECT tenant_id, session_id, chat_id, id, created_at, "
        "CASE WHEN revoked_at IS NULL THEN substr(COALESCE(body, "
        f"{text.format(col='media', key='caption')}), 1, 200) END, "
        f"{kind}, from_me, status, 0, 'open', first_at, created_at FROM ("
        "SELECT m.*, ROW_NUMBER() OVER (PARTITION BY session_id, chat_id ORDER BY created_at DESC, id DESC) AS rn, "
        "MIN(created_at) OVER (PARTITION BY session_id, chat_id) AS first_at "
        "FROM messages m WHERE chat_id <> 'status@broadcast') newest WHERE rn = 1"
    )
    true = 'true' if dialect == 'postgresql' else '1'
    exists = "bool_or(direction = 'in')" if dialect == 'postgresql' else "MAX(direction = 'in')"
    op.execute(
        "INSERT INTO contacts (tenant_id, chat_id, phone, lid, first_message_at, last_message_at, tags, wa_exists, "
        "exists_checked_at, created_at, updated_at) "
        "SELECT tenant_id, chat_id, "
        "CASE WHEN chat_id LIKE '%@c.us' THEN substr(chat_id, 1, length(chat_id) - 5) END, "
        "CASE WHEN chat_id LIKE '%@lid' THEN chat_id END, "
        f"MIN(created_at), MAX(created_at), '[]', "
        f"CASE WHEN {exists} THEN {true} END, "
        f"CASE WHEN {exists} THEN MAX(created_at) END, MIN(created_at), MAX(created_at) "
        "FROM messages WHERE chat_id LIKE '%@c.us' OR chat_id LIKE '%@lid' GROUP BY tenant_id, chat_id"
    )


def downgrade():
    op.drop_table('quick_replies')
    with op.batch_alter_table('chat_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_notes_tenant_id'))
        batch_op.drop_index('ix_chat_notes_chat_created')
    op.drop_table('chat_notes')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_tenant')
    op.drop_table('contacts')
    with op.batch_alter_table('chats', schema=None) as batch_op:
        for name in ('ix_chats_last_message', 'ix_chats_unassigned', 'ix_chats_assignee', 'ix_chats_unread',
                     'ix_chats_open', 'ix_chats_session_activity', 'ix_chats_tenant_activity'):
            batch_op.drop_index(name)
    op.drop_table('chats')
