"""The accounts app's own signals.

``user_created`` is sent once per new user (with ``user``), in the
transaction that created it, after its profile exists. Whatever a new user
should get (a welcome email) listens to this, not to every save of User.
"""

from django.dispatch import Signal

user_created = Signal()
