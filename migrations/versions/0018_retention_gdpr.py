"""Data protection: the tenant's media retention and its scheduled deletion (tenants), and whole-tenant exports
(tenant_exports)

Revision ID: 0018
Revises: 0013_campaigns (re-chained onto the newest head when merged)
"""
from alembic import op
import sqlalchemy as sa

revision = '0018'
down_revision = "0016"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade():
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        # stored media files are deleted (the message rows stay) after this many days; NULL: the platform default
        batch_op.add_column(sa.Column('retention_media_days', sa.Integer(), nullable=True))
        # the owner asked for the tenant's deletion: deactivated now, everything deleted after the grace period
        batch_op.add_column(sa.Column('deletion_requested_at', _TS, nullable=True))
        batch_op.add_column(sa.Column('deletion_scheduled_for', _TS, nullable=True))
        batch_op.add_column(sa.Column('deletion_requested_by', sa.String(254), nullable=True))
    op.create_table(
        'tenant_exports',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenants.id', ondelete='CASCADE',
                                                           name='fk_tenant_exports_tenant_id_tenants'),
                  nullable=False),
        sa.Column('state', sa.String(10), nullable=False),
        sa.Column('requested_by', sa.String(254)),
        sa.Column('storage_key', sa.String(255)),
        sa.Column('size', sa.BigInteger()),
        sa.Column('error', sa.String(500)),
        sa.Column('created_at', _TS, nullable=False),
        sa.Column('finished_at', _TS),
        sa.Column('expires_at', _TS),
    )
    op.create_index('ix_tenant_exports_tenant_created', 'tenant_exports', ['tenant_id', 'created_at'])


def downgrade():
    op.drop_index('ix_tenant_exports_tenant_created', table_name='tenant_exports')
    op.drop_table('tenant_exports')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        for column in ('deletion_requested_by', 'deletion_scheduled_for', 'deletion_requested_at',
                       'retention_media_days'):
            batch_op.drop_column(column)
