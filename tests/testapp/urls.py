"""URLs of the test views (included by tests/urls.py)."""

from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("trail-test/nothing/", views.nothing, name="trail-nothing"),
    path("trail-test/products/", views.create_product, name="trail-create"),
    path("trail-test/async/products/", views.acreate_product, name="trail-acreate"),
    path("trail-test/async/products/<int:pk>/", views.asave_product, name="trail-asave"),
    path("trail-test/api/products/", views.TokenProductView.as_view(), name="trail-api-create"),
]
