"""reader self-service: pending subscriptions, topics, pause, confirmation times

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:40:00

Existing subscribers follow every topic, are not paused and were added by an admin (so they
never needed to confirm). ``subscription.status`` gains the value ``pending`` (no schema change:
it is a string). Erasure suppressions are rows of the existing ``suppression`` table whose
``email_key`` is a hash.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import digest.timeutil


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topics', sqlmodel.sql.sqltypes.AutoString(length=1000),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('paused_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('confirm_sent_at',
                                      digest.timeutil.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at',
                                      digest.timeutil.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        # Expiring pending sign-ups looks them up by status.
        batch_op.create_index('ix_subscription_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_status')
    # Pending sign-ups did not exist before this revision: drop them rather than mail them.
    op.execute("DELETE FROM subscription WHERE status = 'pending'")
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_column('confirmed_at')
        batch_op.drop_column('confirm_sent_at')
        batch_op.drop_column('paused_until')
        batch_op.drop_column('topics')
