"""Fill the bench-only "trail" database with many signaltrail events, fast.

One raw ``INSERT ... SELECT`` over a generated series (PostgreSQL's
``generate_series``, a recursive CTE on SQLite) writes all rows in one
statement: writing a million events through signaltrail would take minutes.

The seeded rows are NOT valid trail rows: their ``hash`` and ``prev_hash``
are fake (``manage.py trail verify`` would report every one of them), which
is why they go to a throw-away database that exists only for the query
workloads. Only the shape matters here: events spread over three models
(Product, Category, Tag), each object with about ``EVENTS_PER_OBJECT``
events, one second apart, newest last.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import connections

EVENTS_PER_OBJECT = 20
MODELS = 3


def objects_per_model(events: int) -> int:
    return max(1, events // (MODELS * EVENTS_PER_OBJECT))


def seed_trail(events: int, using: str = "trail") -> None:
    from benchproject.benchapp.models import Category, Product, Tag

    from signaltrail.models import Event

    cts = ContentType.objects.db_manager(using)
    ct = [cts.get_for_model(m).pk for m in (Product, Category, Tag)]
    per_model = objects_per_model(events)
    connection = connections[using]
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = (
        "at, action, actor_id, actor_label, content_type_id, object_pk, object_repr, "
        "changes, context, prev_hash, hash"
    )
    # g runs 1..events; the object is (g / 3) mod per_model + 1, the model g mod 3.
    ct_case = f"CASE g % 3 WHEN 0 THEN {ct[0]} WHEN 1 THEN {ct[1]} ELSE {ct[2]} END"
    obj = f"((g / 3) % {per_model}) + 1"
    if connection.vendor == "postgresql":
        sql = f"""
            INSERT INTO {table} ({columns})
            SELECT now() - make_interval(secs => {events} - g),
                   (ARRAY['create', 'update', 'update', 'delete'])[1 + g % 4],
                   NULL, 'seed', {ct_case}, ({obj})::text, 'seeded ' || ({obj})::text,
                   '{{"stock": [1, 2]}}'::jsonb, '{{"source": "seed"}}'::jsonb,
                   'fake', md5(g::text) || md5(g::text)
            FROM generate_series(1, {events}) AS g
        """
    elif connection.vendor == "sqlite":
        sql = f"""
            WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {events})
            INSERT INTO {table} ({columns})
            SELECT strftime('%Y-%m-%d %H:%M:%S', 'now', '-' || ({events} - g) || ' seconds')
                   || '.000000',
                   CASE g % 4 WHEN 0 THEN 'create' WHEN 3 THEN 'delete' ELSE 'update' END,
                   NULL, 'seed', {ct_case}, CAST({obj} AS TEXT),
                   'seeded ' || CAST({obj} AS TEXT),
                   '{{"stock": [1, 2]}}', '{{"source": "seed"}}',
                   'fake', printf('%064x', g)
            FROM s
        """
    else:
        raise RuntimeError(f"seeding the trail is not written for {connection.vendor}")
    with connection.cursor() as cursor:
        cursor.execute(sql)
        if connection.vendor == "postgresql":
            # What autovacuum would do shortly after a load like this one.
            cursor.execute(f"ANALYZE {table}")
