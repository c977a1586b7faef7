"""URLs for the test suite: the admin, plus the test app's URLs once it has some."""

import importlib
import importlib.util

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]

# tests/testapp is written alongside this file and may not have urls.py yet.
if importlib.util.find_spec("tests.testapp.urls") is not None:
    urlpatterns += importlib.import_module("tests.testapp.urls").urlpatterns
