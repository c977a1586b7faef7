from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        # Receivers are connected here, once the models are loaded, and never
        # as a side effect of importing models.py: those that run in-process,
        # and those that run in the background worker.
        from . import emails, receivers  # noqa: F401
