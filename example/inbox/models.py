from django.db import models
from django.utils.translation import gettext_lazy as _


class Message(models.Model):
    """One email the shop sent, as the demo's local mailbox keeps it (one row per recipient)."""

    sent_at = models.DateTimeField(_("sent at"), auto_now_add=True, db_index=True)
    from_email = models.CharField(_("from"), max_length=254)
    to = models.CharField(_("to"), max_length=254, db_index=True)
    subject = models.CharField(_("subject"), max_length=998)
    body = models.TextField(_("body"))
    message_id = models.CharField(_("message ID"), max_length=255, blank=True, default="")

    class Meta:
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        ordering = ("-sent_at", "-id")
        constraints = [
            # A message delivered twice (background calls run at least once)
            # is kept once.
            models.UniqueConstraint(
                fields=["message_id", "to"],
                condition=~models.Q(message_id=""),
                name="inbox_message_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.to}: {self.subject}"
