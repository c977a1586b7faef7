"""The @in_background receivers the worker tests run.

Each call is appended as one JSON line to the file named by SIGNALTRAIL_BG_LOG
(every call, duplicates included), and leaves one Note "bg:<idempotency key>"
in the database: an effect made idempotent by its key, as a real receiver's
would be.
"""

import json
import os

from django.db.models.signals import post_save

import signaltrail
from tests.testapp.models import Note, Product


@signaltrail.in_background(post_save, sender=Product)
def product_saved(sender, instance, changes, idempotency_key, **kwargs):
    line = {
        "pid": os.getpid(),
        "sender": sender._meta.label,
        "instance": None if instance is None else {"pk": instance.pk, "name": instance.name},
        "changes": changes,
        "idempotency_key": idempotency_key,
        "created": kwargs["created"],
        "update_fields": kwargs["update_fields"],
        "using": kwargs["using"],
        "signal": repr(kwargs["signal"]),
    }
    with open(os.environ["SIGNALTRAIL_BG_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")
    Note.objects.get_or_create(text=f"bg:{idempotency_key}")
