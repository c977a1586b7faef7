"""A receiver connected before the trail's, inert until the workload arms it.

tests/bookshop/models.py connects it when it is imported, as many apps do
(or as the ready() of an app listed before signaltrail would): before the
receivers ALL_MODELS connects in signaltrail's ready(). The workload's
"autocommit_early" section checks that such a receiver, too, sees a plain
save as Django runs it in autocommit mode: committed before post_save.
"""

from typing import Any

from django.db import IntegrityError, connection, transaction

#: The workload sets "log" to a list to arm the receiver, and back to None.
EARLY: dict[str, Any] = {"log": None}


def early_post_save(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    log = EARLY["log"]
    if log is None:
        return
    from .models import Genre

    name = instance.name
    log.append(["early post_save", name, connection.in_atomic_block])
    transaction.on_commit(lambda: log.append(["on_commit", name]))
    if name == "early boom":
        raise ValueError("early receiver failed")
    if name == "early upsert":
        try:
            Genre.objects.create(code="general", name="duplicate")
        except IntegrityError:
            log.append(["caught IntegrityError", Genre.objects.filter(code="general").exists()])
