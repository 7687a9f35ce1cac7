"""edition approval: lists may hold editions for an editor; editions record approval and
cancellation

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:35:00
"""
from alembic import op
import sqlalchemy as sa
import digest.timeutil


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing lists keep sending without approval.
    with op.batch_alter_table('mailing_list', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approval', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('edition', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved_at', digest.timeutil.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', digest.timeutil.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('edition', schema=None) as batch_op:
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('approved_at')
    with op.batch_alter_table('mailing_list', schema=None) as batch_op:
        batch_op.drop_column('approval')
