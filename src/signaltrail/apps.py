from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SignalTrailConfig(AppConfig):
    name = "signaltrail"
    verbose_name = _("Audit trail")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import auth, checks  # noqa: F401  (checks register on import)
        from .capture import install_relations
        from .registry import register_from_settings, registry

        register_from_settings()
        for options in registry:
            install_relations(options)
        auth.connect()
