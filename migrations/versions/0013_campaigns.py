"""campaigns, campaign_recipients, campaign_rejects (campaigns through the send queue), opt_outs and
opt_out_settings (the tenant's suppression list and its keywords)

Revision ID: 0013_campaigns
Revises: 0012_send_queue
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0013_campaigns'
down_revision = "0012_send_queue"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_TS = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'opt_outs',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenants.id', ondelete='CASCADE',
                                                           name='fk_opt_outs_tenant_id_tenants'), nullable=False),
        sa.Column('chat_id', sa.String(128), nullable=False),
        sa.Column('source', sa.String(10), nullable=False),
        sa.Column('note', sa.String(200)),
        sa.Column('created_by', sa.String(254)),
        sa.Column('created_at', _TS, nullable=False),
        sa.UniqueConstraint('tenant_id', 'chat_id', name='uq_opt_outs_tenant_id_chat_id'),
    )
    op.create_table(
        'opt_out_settings',
        sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenants.id', ondelete='CASCADE',
                                                           name='fk_opt_out_settings_tenant_id_tenants'),
                  primary_key=True),
        sa.Column('keywords', _JSON, nullable=False),
        sa.Column('confirm', sa.Boolean(), nullable=False),
        sa.Column('confirm_text', sa.Text()),
        sa.Column('updated_at', _TS, nullable=False),
    )
    op.create_table(
        'campaigns',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenants.id', ondelete='CASCADE',
                                                           name='fk_campaigns_tenant_id_tenants'), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('state', sa.String(10), nullable=False),
        sa.Column('session_ids', _JSON, nullable=False),
        sa.Column('template', sa.Text(), nullable=False),
        sa.Column('variables', _JSON, nullable=False),
        sa.Column('media', _JSON),
        sa.Column('audience', _JSON, nullable=False),
        sa.Column('start_at', _TS),
        sa.Column('quiet_start', sa.Integer()),
        sa.Column('quiet_end', sa.Integer()),
        sa.Column('daily_cap', sa.Integer()),
        sa.Column('total_rows', sa.Integer(), nullable=False),
        sa.Column('accepted', sa.Integer(), nullable=False),
        sa.Column('rejected', sa.Integer(), nullable=False),
        sa.Column('progress', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text()),
        sa.Column('created_by', sa.String(254)),
        sa.Column('started_at', _TS),
        sa.Column('finished_at', _TS),
        sa.Column('created_at', _TS, nullable=False),
        sa.Column('updated_at', _TS, nullable=False),
    )
    op.create_index('ix_campaigns_tenant_created', 'campaigns', ['tenant_id', 'created_at'])
    op.create_table(
        'campaign_recipients',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('campaign_id', _ID, sa.ForeignKey('campaigns.id', ondelete='CASCADE',
                                                    name='fk_campaign_recipients_campaign_id_campaigns'),
                  nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('chat_id', sa.String(128), nullable=False),
        sa.Column('values', _JSON, nullable=False),
        sa.Column('session_id', sa.String(36)),
        sa.Column('state', sa.String(10), nullable=False),
        sa.Column('reason', sa.String(40)),
        sa.Column('message_id', _ID),
        sa.Column('sent_at', _TS),
        sa.Column('updated_at', _TS, nullable=False),
        sa.UniqueConstraint('campaign_id', 'chat_id', name='uq_campaign_recipients_campaign_id_chat_id'),
    )
    op.create_index('ix_campaign_recipients_state', 'campaign_recipients', ['campaign_id', 'state'])
    op.create_table(
        'campaign_rejects',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('campaign_id', _ID, sa.ForeignKey('campaigns.id', ondelete='CASCADE',
                                                    name='fk_campaign_rejects_campaign_id_campaigns'),
                  nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('phone', sa.String(64)),
        sa.Column('reason', sa.String(40), nullable=False),
        sa.Column('detail', sa.String(200)),
    )
    op.create_index('ix_campaign_rejects_campaign', 'campaign_rejects', ['campaign_id', 'line'])


def downgrade():
    op.drop_index('ix_campaign_rejects_campaign', table_name='campaign_rejects')
    op.drop_table('campaign_rejects')
    op.drop_index('ix_campaign_recipients_state', table_name='campaign_recipients')
    op.drop_table('campaign_recipients')
    op.drop_index('ix_campaigns_tenant_created', table_name='campaigns')
    op.drop_table('campaigns')
    op.drop_table('opt_out_settings')
    op.drop_table('opt_outs')
