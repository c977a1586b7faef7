from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShopConfig(AppConfig):
    """The project itself as an app: base templates, static files, demo commands."""

    name = "shop"
    verbose_name = _("Shop")
