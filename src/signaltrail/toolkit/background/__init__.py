"""``@in_background``: signal receivers that run as tasks, after commit, without losing work.

- :mod:`.outbox`: the decorator; each call is written as a ``PendingCall`` row
  in the transaction of the change, and handed to the backend after commit.
- :mod:`.savebase`: in autocommit mode, a save and its post_save receivers
  share one transaction, so the call commits with the change.
- :mod:`.calls`: what a call carries (references, changed values) and the
  arguments the receiver gets.
- :mod:`.backends` and :mod:`.tasks`: django.tasks or Celery.
- :mod:`.worker`: claim, run, retry with backoff, park as a dead letter.
- :mod:`.relay`: ``manage.py trail relay``, which sends what was left behind.

Nothing here touches the models at import time: ``import signaltrail`` works
before the app registry is ready.
"""

from .outbox import disconnect, in_background

__all__ = ["disconnect", "in_background"]
