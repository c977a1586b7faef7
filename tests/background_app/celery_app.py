"""The Celery app of the test project, configured from Django's CELERY_* settings."""

from celery import Celery

app = Celery("signaltrail_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_default()
