"""The accounts app's emails, sent in the background (``@signaltrail.in_background``).

Each receiver runs in the worker (``manage.py db_worker``) after the change
committed; it never runs for a rolled-back change, and it is not lost if the
web process dies after the commit (the call waits in signaltrail's outbox).
Model instances come back loaded fresh from the database, or None if gone.
"""

import signaltrail

from .mail import send_to_user
from .signals import user_created


@signaltrail.in_background(user_created)
def send_welcome(sender, user, idempotency_key, **kwargs):
    if user is not None:  # None: deleted before the worker got to it
        send_to_user(user, "accounts/email/welcome", {}, key=idempotency_key)
