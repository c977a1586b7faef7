"""The example shop's settings, for its tests.

The test database is a SQLite *file* in a temporary directory, not an
in-memory one: the tests run a real background worker process, the live
server of the browser test and concurrent requests against it.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from shop.settings import *  # noqa: F403
from shop.settings import DATABASES

_TMP = Path(tempfile.mkdtemp(prefix="shop-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)

DATABASES["default"]["TEST"] = {"NAME": str(_TMP / "test.sqlite3")}
MEDIA_ROOT = _TMP / "media"

# Tasks run right away, in the process that enqueues them (the receivers
# enqueue after the commit). tests/test_background.py uses the database
# backend and a real worker instead.
TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
