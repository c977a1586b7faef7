"""In-process receivers of the accounts app, connected in AccountsConfig.ready().

``create_profile`` writes to the database, so it is a plain receiver: it
runs inside the transaction that creates the user and rolls back with it.
It then announces the new user with the ``user_created`` signal; the
welcome email listens to that signal in the background (accounts.emails).
"""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Profile
from .signals import user_created

User = get_user_model()


@receiver(post_save, sender=User, dispatch_uid="accounts.create_profile")
def create_profile(sender, instance, created, raw=False, using=None, **kwargs):
    if created and not raw:
        Profile.objects.using(using).get_or_create(user=instance)
        user_created.send(sender=sender, user=instance)
