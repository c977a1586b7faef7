from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SignalTrailConfig(AppConfig):
    name = "signaltrail"
    verbose_name = _("Audit trail")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate
        from django.test.signals import setting_changed

        from . import auth, begin, bulk, checks, held, integrity  # noqa: F401  (checks register on import)
        from .capture import install_relations
        from .registry import clear_plans, register_from_settings, registry

        register_from_settings()
        for options in registry:
            install_relations(options)
        auth.connect()
        bulk.install()
        integrity.install()
        held.install()
        begin.install()
        setting_changed.connect(clear_plans, dispatch_uid="signaltrail.clear_plans")
        # Under the "signaltrail.capture" prefix, so muted(post_migrate) keeps it.
        post_migrate.connect(
            integrity.forget_committed_heads,
            dispatch_uid="signaltrail.capture.forget_committed_heads",
        )
