"""audience sub-unions as rows of a join table per addressed model

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:00:00

The sub-unions an event's or an announcement's audience names become rows of `event_sub_unions` and
`announcement_sub_unions`, filled here from each row's ",3,5," column (this migration imports nothing from `app`).
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LINKS = {"event_sub_unions": "events", "announcement_sub_unions": "announcements"}


def upgrade() -> None:
    bind = op.get_bind()
    known = {row[0] for row in bind.execute(sa.text("SELECT id FROM sub_unions"))}
    for name, target in LINKS.items():
        table = op.create_table(
            name,
            sa.Column('target_id', sa.Integer(), nullable=False),
            sa.Column('sub_union_id', sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(['sub_union_id'], ['sub_unions.id'], name=op.f(f'fk_{name}_sub_union_id_sub_unions'),
                                    ondelete='CASCADE'),
            sa.ForeignKeyConstraint(['target_id'], [f'{target}.id'], name=op.f(f'fk_{name}_target_id_{target}'),
                                    ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('target_id', 'sub_union_id', name=op.f(f'pk_{name}')),
        )
        op.create_index(op.f(f'ix_{name}_sub_union_id'), name, ['sub_union_id'], unique=False)
        rows = []
        for target_id, listed in bind.execute(sa.text(f"SELECT id, audience_sub_unions FROM {target}")):
            ids = {int(part) for part in (listed or "").split(",") if part.strip().isdigit()}
            rows += [{"target_id": target_id, "sub_union_id": i} for i in sorted(ids & known)]
        if rows:
            op.bulk_insert(table, rows)


def downgrade() -> None:
    for name in LINKS:
        op.drop_index(op.f(f'ix_{name}_sub_union_id'), table_name=name)
        op.drop_table(name)
