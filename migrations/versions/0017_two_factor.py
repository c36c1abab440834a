"""two-factor sign-in: TOTP columns on users, recovery_codes, webauthn_credentials, remembered_browsers; the
tenant's "require two-factor" flag; how each browser session passed its second step

Revision ID: 0017
Revises: 0013_campaigns
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0017'
down_revision = '0013_campaigns'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def _user_fk(table):
    return sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE',
                                                          name=f'fk_{table}_user_id_users'), nullable=False)


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('totp_secret', sa.Text()))
        batch.add_column(sa.Column('totp_enabled_at', _TS))
        batch.add_column(sa.Column('totp_last_step', sa.BigInteger()))
        batch.add_column(sa.Column('webauthn_handle', sa.String(64)))
        batch.create_unique_constraint('uq_users_webauthn_handle', ['webauthn_handle'])
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('require_two_factor', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('browser_sessions') as batch:
        batch.add_column(sa.Column('second_factor', sa.String(16)))
        batch.add_column(sa.Column('enrol_required', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.Integer(), primary_key=True),
        _user_fk('recovery_codes'),
        sa.Column('code_hash', sa.String(64), nullable=False),
        sa.Column('created_at', _TS, nullable=False),
        sa.Column('used_at', _TS),
    )
    op.create_index('ix_recovery_codes_user_id', 'recovery_codes', ['user_id'])
    op.create_table(
        'webauthn_credentials',
        sa.Column('id', sa.Integer(), primary_key=True),
        _user_fk('webauthn_credentials'),
        sa.Column('credential_id', sa.String(1400), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('sign_count', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('transports', _JSON, nullable=False),
        sa.Column('created_at', _TS, nullable=False),
        sa.Column('last_used_at', _TS),
        sa.UniqueConstraint('credential_id', name='uq_webauthn_credentials_credential_id'),
    )
    op.create_index('ix_webauthn_credentials_user_id', 'webauthn_credentials', ['user_id'])
    op.create_table(
        'remembered_browsers',
        sa.Column('id', sa.Integer(), primary_key=True),
        _user_fk('remembered_browsers'),
        sa.Column('token_hash', sa.String(64), nullable=False),
        sa.Column('user_agent', sa.String(300), nullable=False),
        sa.Column('created_at', _TS, nullable=False),
        sa.Column('expires_at', _TS, nullable=False),
        sa.Column('revoked_at', _TS),
        sa.UniqueConstraint('token_hash', name='uq_remembered_browsers_token_hash'),
    )
    op.create_index('ix_remembered_browsers_user_id', 'remembered_browsers', ['user_id'])


def downgrade():
    op.drop_table('remembered_browsers')
    op.drop_table('webauthn_credentials')
    op.drop_table('recovery_codes')
    with op.batch_alter_table('browser_sessions') as batch:
        batch.drop_column('enrol_required')
        batch.drop_column('second_factor')
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('require_two_factor')
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint('uq_users_webauthn_handle', type_='unique')
        batch.drop_column('webauthn_handle')
        batch.drop_column('totp_last_step')
        batch.drop_column('totp_enabled_at')
        batch.drop_column('totp_secret')
