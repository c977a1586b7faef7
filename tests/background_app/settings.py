"""Settings of the processes started by tests/test_background_workers.py.

The test suite's settings, plus a task backend, on the database the test
process hands over in SIGNALTRAIL_BG_DATABASE (JSON). SIGNALTRAIL_BG_MODE
picks the backend: "db" (django-tasks-db), "rq" (django-tasks-rq) or
"celery"; SIGNALTRAIL_BG_QUEUE names the queue, unique per test run, and
SIGNALTRAIL_BG_REDIS the Redis server of RQ and Celery.
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

DATABASES = {"default": json.loads(os.environ["SIGNALTRAIL_BG_DATABASE"])}

MODE = os.environ.get("SIGNALTRAIL_BG_MODE", "db")
QUEUE = os.environ.get("SIGNALTRAIL_BG_QUEUE", "default")
REDIS = os.environ.get("SIGNALTRAIL_BG_REDIS", "")

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db", "tests.background_app"]

TASKS = {
    "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": [QUEUE]},
}
if MODE == "rq":
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {QUEUE: {"URL": REDIS}}
    TASKS["rq"] = {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": [QUEUE]}

CELERY_BROKER_URL = REDIS
CELERY_TASK_DEFAULT_QUEUE = QUEUE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

SIGNALTRAIL = {
    "BACKGROUND": "celery" if MODE == "celery" else "tasks",
    "TASK_BACKEND": MODE if MODE in TASKS else "db",
    "TASK_QUEUE": QUEUE,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"signaltrail": {"handlers": ["stderr"], "level": "INFO"}},
}
