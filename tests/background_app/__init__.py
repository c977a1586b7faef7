"""What tests/test_background_workers.py runs in other processes.

Worker processes (django-tasks-db's db_worker, an RQ worker, a Celery worker),
the relay and the "producer" scenarios run with DJANGO_SETTINGS_MODULE=
tests.background_app.settings, on a database shared with the test process.
Nothing here is imported by the test process itself: the receivers below
would otherwise listen to every Product saved by the rest of the suite.
"""
