"""admin indexes: subscriber listing filters, per-list counts, delivery counts for /metrics

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:35:00

Indexes only: creating them (and dropping one made redundant) on a live database takes a lock on the table for as long as the
build (seconds at a million rows) and changes no data, so workers may keep running.
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `subscribers list --tier T`: the rows of one tier already in address order.
    op.create_index('ix_subscriber_tier_email_key', 'subscriber', ['tier', 'email_key'])
    # `lists list`, `lists show`, `--status`: counts by (list, status) read from the index.
    op.create_index('ix_subscription_list_status', 'subscription', ['list_id', 'status'])
    # Redundant beside (list_id, subscriber_id) and (list_id, status), and one more B-tree to
    # write for every subscription an import adds.
    op.drop_index('ix_subscription_list_id', table_name='subscription')
    # /metrics and `digest status`: deliveries counted by (edition, status).
    op.create_index('ix_delivery_edition_status', 'delivery', ['edition_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_delivery_edition_status', table_name='delivery')
    op.create_index('ix_subscription_list_id', 'subscription', ['list_id'])
    op.drop_index('ix_subscription_list_status', table_name='subscription')
    op.drop_index('ix_subscriber_tier_email_key', table_name='subscriber')
