"""Settings of the signaltrail example shop (a demo: development settings only).

A few environment variables let the tests and `make demo` point the project
elsewhere without another settings module:

- ``SHOP_DB``: the SQLite file (default ``example/db.sqlite3``);
- ``SHOP_MEDIA_ROOT``: where uploaded product images go (default ``example/media``);
- ``SHOP_SMTP_PORT`` (and ``SHOP_SMTP_HOST``, default 127.0.0.1): send mail to
  that SMTP server instead of the shop's own mailbox page.
"""

import os
from pathlib import Path

from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "example-shop-not-secret-change-me")
DEBUG = os.environ.get("SHOP_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_db",
    "signaltrail",
    # The shop's own apps. Each registers its receivers in AppConfig.ready().
    "shop",
    "inbox",
    "accounts",
    "catalog",
    "tasks",
    "activity",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After AuthenticationMiddleware: every event of a request gets its user,
    # IP, request id and path.
    "signaltrail.middleware.TrailMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "shop.wsgi.application"

# SQLite, with settings that let the web server and the background worker
# write at the same time: WAL (readers don't block the writer), BEGIN
# IMMEDIATE (a transaction takes the write lock up front instead of failing
# when it upgrades) and a generous busy timeout.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", BASE_DIR / "db.sqlite3"),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

# Background work: Django's tasks framework with the database backend of
# django-tasks-db. `manage.py db_worker` runs the tasks (make demo starts it).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Email: by default every message lands in the shop's own mailbox (the inbox
# app, shown at /mail/), so the demo needs no mail server.
if os.environ.get("SHOP_SMTP_PORT"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": os.environ.get("SHOP_SMTP_HOST", "127.0.0.1"),
                "port": int(os.environ["SHOP_SMTP_PORT"]),
                "timeout": 10,
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "inbox.backends.InboxBackend"}}
DEFAULT_FROM_EMAIL = "Signaltrail Shop <shop@example.com>"

AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:list"
LOGOUT_REDIRECT_URL = "catalog:list"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("id", _("Indonesian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("SHOP_MEDIA_ROOT", BASE_DIR / "media"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The audit trail. The shop's own models are tracked with @signaltrail.track
# next to their definitions; a model from another app is tracked here.
SIGNALTRAIL = {
    "MODELS": {
        "auth.User": {"exclude": ["last_login"]},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "shop": {"handlers": ["console"], "level": "INFO"},
        "catalog": {"handlers": ["console"], "level": "INFO"},
        "signaltrail": {"handlers": ["console"], "level": "WARNING"},
    },
}

# Absolute links in emails.
SHOP_SITE_URL = os.environ.get("SHOP_SITE_URL", "http://127.0.0.1:8000")
