from django.apps import AppConfig


class BookshopConfig(AppConfig):
    """A realistic small app, untracked unless SIGNALTRAIL["ALL_MODELS"] is set.

    It exists so that tests/test_orm_invariance.py can run the same ORM
    workload with and without the trail installed on every model.
    """

    name = "tests.bookshop"
    label = "bookshop"
    default_auto_field = "django.db.models.BigAutoField"
