from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

import signaltrail


@signaltrail.track(exclude=["created_at"])
class Profile(models.Model):
    """What the shop knows about a user beyond django.contrib.auth's User.

    Created by a post_save receiver on User (accounts.receivers), so every
    user has one whether created by the signup page, the admin or a script.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="profile",
    )
    newsletter = models.BooleanField(_("email me about new products and price drops"), default=True)
    language = models.CharField(
        _("language of my emails"),
        max_length=10,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: the shop's default language."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")

    def __str__(self) -> str:
        return str(self.user)
