"""System checks: misconfiguration is reported by ``manage.py check``, never by a traceback."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import models

from .conf import DEFAULTS, conf
from .registry import TRACK_OPTIONS, registry

MIDDLEWARE = "signaltrail.middleware.TrailMiddleware"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    raw = conf.raw
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [
            Error(
                "SIGNALTRAIL must be a dict.",
                hint='For example SIGNALTRAIL = {"MODELS": {"shop.Product": {}}}.',
                id="signaltrail.E001",
            )
        ]
    errors: list[Any] = []
    for key in raw:
        if key not in DEFAULTS:
            errors.append(
                Error(
                    f"SIGNALTRAIL has an unknown setting {key!r}.",
                    hint="Known settings: " + ", ".join(sorted(DEFAULTS)) + ".",
                    id="signaltrail.E002",
                )
            )
    if not isinstance(conf.ALL_MODELS, bool):
        errors.append(
            Error("SIGNALTRAIL['ALL_MODELS'] must be True or False.", id="signaltrail.E002")
        )
    for name in ("EXCLUDE_MODELS", "GLOBAL_EXCLUDE", "GLOBAL_MASK"):
        value = getattr(conf, name)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            errors.append(
                Error(f"SIGNALTRAIL['{name}'] must be a list of strings.", id="signaltrail.E002")
            )
    errors.extend(_check_models_setting(conf.MODELS))
    for label in conf.EXCLUDE_MODELS if isinstance(conf.EXCLUDE_MODELS, list | tuple) else ():
        if isinstance(label, str) and not _label_exists(label, allow_app=True):
            errors.append(
                Warning(
                    f"SIGNALTRAIL['EXCLUDE_MODELS'] names {label!r}, which is not an "
                    "installed model or app.",
                    id="signaltrail.W002",
                )
            )
    return errors


def _label_exists(label: str, allow_app: bool = False) -> bool:
    try:
        apps.get_model(label)
        return True
    except (LookupError, ValueError):
        return allow_app and "." not in label and apps.is_installed_label(label)


def _check_models_setting(value: Any) -> list[Any]:
    if not isinstance(value, dict):
        return [
            Error(
                "SIGNALTRAIL['MODELS'] must be a dict of model labels to options.",
                hint='For example {"shop.Product": {"exclude": ["updated_at"]}}.',
                id="signaltrail.E003",
            )
        ]
    errors: list[Any] = []
    for label, options in value.items():
        try:
            apps.get_model(label)
        except (LookupError, ValueError, TypeError):
            errors.append(
                Error(
                    f"SIGNALTRAIL['MODELS'] names {label!r}, which is not an installed model.",
                    hint="Use 'app_label.ModelName', e.g. 'shop.Product'.",
                    id="signaltrail.E003",
                )
            )
            continue
        if options is None:
            continue
        if not isinstance(options, dict):
            errors.append(
                Error(
                    f"The options of {label!r} in SIGNALTRAIL['MODELS'] must be a dict.",
                    id="signaltrail.E006",
                )
            )
            continue
        for key, names in options.items():
            if key not in TRACK_OPTIONS:
                errors.append(
                    Error(
                        f"{label!r} in SIGNALTRAIL['MODELS'] has an unknown option {key!r}.",
                        hint="Options are: " + ", ".join(TRACK_OPTIONS) + ".",
                        id="signaltrail.E006",
                    )
                )
            elif not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                errors.append(
                    Error(
                        f"{label!r} option {key!r} must be a list of field names.",
                        id="signaltrail.E006",
                    )
                )
    return errors


@register(Tags.models)
def check_tracked_models(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from .models import Event

    errors: list[Any] = []
    for opts in registry:
        model = opts.model
        label = model._meta.label
        if model is Event:
            errors.append(
                Error(
                    "signaltrail cannot track its own Event model.",
                    hint="Remove signaltrail.Event from the tracked models.",
                    obj=model,
                    id="signaltrail.E005",
                )
            )
            continue
        names = {f.name for f in model._meta.get_fields()} | {
            f.attname for f in model._meta.concrete_fields
        }
        for option in ("exclude", "mask"):
            for name in sorted(getattr(opts, option)):
                if name not in names:
                    errors.append(
                        Error(
                            f"{label} is tracked with {option}={name!r}, but it has no "
                            "such field.",
                            obj=model,
                            id="signaltrail.E004",
                        )
                    )
        for name in opts.m2m:
            try:
                field = model._meta.get_field(name)
            except Exception:
                field = None
            if not isinstance(field, models.ManyToManyField):
                errors.append(
                    Error(
                        f"{label} is tracked with m2m={name!r}, which is not a "
                        "many-to-many field of it.",
                        obj=model,
                        id="signaltrail.E004",
                    )
                )
    return errors


@register(Tags.compatibility)
def check_installation(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    if not apps.is_installed("django.contrib.contenttypes"):
        errors.append(
            Error(
                "signaltrail needs 'django.contrib.contenttypes' in INSTALLED_APPS.",
                id="signaltrail.E007",
            )
        )
    tracked = any(True for _ in registry)
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if tracked and MIDDLEWARE not in middleware:
        errors.append(
            Warning(
                "Models are tracked but TrailMiddleware is not in MIDDLEWARE: events "
                "written by views will have no actor, IP or request id.",
                hint=f"Add '{MIDDLEWARE}' after AuthenticationMiddleware.",
                id="signaltrail.W001",
            )
        )
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    if MIDDLEWARE in middleware and auth in middleware and (
        middleware.index(MIDDLEWARE) < middleware.index(auth)
    ):
        errors.append(
            Warning(
                "TrailMiddleware comes before AuthenticationMiddleware.",
                hint="It still works (the actor is read lazily), but put it after "
                "AuthenticationMiddleware so request.user exists when events are written.",
                id="signaltrail.W003",
            )
        )
    return errors
