"""What a web process would do, run in its own process by the worker tests.

    python -m tests.background_app.scenario save NAME...   # create products
    python -m tests.background_app.scenario crash NAME     # save, die after COMMIT
    python -m tests.background_app.scenario state NAME...  # print JSON: calls, notes

"crash" saves in autocommit mode (no atomic block of its own) and dies with
os._exit(1) in the first on-commit callback: after the change (and its
pending call) committed, before the on-commit hand-over to the task backend.
"""

import json
import os
import sys

import django


def main(argv):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.background_app.settings")
    django.setup()
    from django.db import transaction
    from django.db.models.signals import pre_save

    from signaltrail.models import PendingCall
    from tests.testapp.models import Note, Product

    command, names = argv[0], argv[1:]
    if command == "save":
        for name in names:
            Product.objects.create(name=name)
    elif command == "crash":

        def die_after_commit(sender, instance, **kwargs):
            # Registered before the hand-over's callback, so it runs first.
            transaction.on_commit(lambda: os._exit(1))

        pre_save.connect(die_after_commit, sender=Product, weak=False)
        Product.objects.create(name=names[0])
        print("still alive: the process should have died", flush=True)
        sys.exit(2)
    elif command == "state":
        products = {p.pk: p.name for p in Product.objects.filter(name__in=names)}
        calls = PendingCall.objects.filter(
            model="testapp.Product", object_pk__in=[str(pk) for pk in products]
        )
        state = {
            "products": sorted(products.values()),
            "calls": [
                {
                    "key": str(c.key),
                    "status": c.status,
                    "attempts": c.attempts,
                    "name": products[int(c.object_pk)],
                }
                for c in calls
            ],
            "notes": sorted(
                Note.objects.filter(text__startswith="bg:").values_list("text", flat=True)
            ),
        }
        print(json.dumps(state))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
