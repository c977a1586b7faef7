from django.apps import AppConfig


class BackgroundAppConfig(AppConfig):
    """Connects the @in_background receivers when Django starts, as a project would."""

    name = "tests.background_app"
    label = "background_app"

    def ready(self):
        from django.conf import settings

        from . import receivers  # noqa: F401

        if settings.SIGNALTRAIL["BACKGROUND"] == "celery":
            from . import celery_app  # noqa: F401 - the app every process uses
