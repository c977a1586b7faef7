"""Run the bookshop workload in a fresh test database; write the result as JSON.

    DJANGO_SETTINGS_MODULE=tests.settings_all_models python -m tests.bookshop.runner out.json

A separate process per settings module, because which models are tracked is
fixed when Django starts. The workload runs in autocommit mode, outside any
test transaction, as a request or a management command would, on the
"default" alias. Both aliases' test databases are created, as a project's
databases would exist: some checks ask every database server its version.

It also runs ``manage.py check`` (with warnings as failures) once the test
databases exist.
"""

import io
import json
import sys


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.test.utils import setup_databases, teardown_databases

    from tests.bookshop import workload

    old = setup_databases(
        verbosity=0, interactive=False, aliases={"default", "other"}, serialized_aliases=set()
    )
    try:
        out = io.StringIO()
        try:
            call_command("check", fail_level="WARNING", stdout=out, stderr=out)
            check = {"ok": True, "output": out.getvalue()}
        except SystemCheckError as exc:
            check = {"ok": False, "output": out.getvalue() + str(exc)}
        result = workload.run()
        result["summary"] = workload.summary()
        result["check"] = check
    finally:
        teardown_databases(old, verbosity=0)
    with open(argv[1], "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
