from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchproject.benchapp"
    label = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        if settings.CONTENDER == "auditlog":
            from auditlog.registry import auditlog

            from .models import Product

            auditlog.register(Product, m2m_fields={"tags"})
