"""System checks: misconfiguration is reported by ``manage.py check``, never by a traceback."""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import models
from django.utils.module_loading import import_string

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
            close = get_close_matches(str(key), list(DEFAULTS), n=1)
            errors.append(
                Error(
                    f"SIGNALTRAIL has an unknown setting {key!r}"
                    + (f" (did you mean {close[0]!r}?)." if close else "."),
                    hint="Known settings: " + ", ".join(sorted(DEFAULTS)) + ".",
                    id="signaltrail.E002",
                )
            )
    for name in ("ALL_MODELS", "AUTH_EVENTS", "POSTGRES_BEGIN_WITH_ROW"):
        if not isinstance(getattr(conf, name), bool):
            errors.append(
                Error(f"SIGNALTRAIL['{name}'] must be True or False.", id="signaltrail.E002")
            )
    length = conf.REPR_MAX_LENGTH
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        errors.append(
            Error(
                "SIGNALTRAIL['REPR_MAX_LENGTH'] must be a positive integer.",
                id="signaltrail.E002",
            )
        )
    for name in ("REQUEST_ID_HEADER", "IP_HEADER"):
        if not isinstance(getattr(conf, name), str | None):
            errors.append(
                Error(
                    f"SIGNALTRAIL['{name}'] must be a header name (a string) or None.",
                    id="signaltrail.E002",
                )
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
    from .models import Event

    errors: list[Any] = []
    for label, options in value.items():
        try:
            if not isinstance(label, str):
                raise TypeError(label)
            model = apps.get_model(label)
        except (LookupError, ValueError, TypeError):
            errors.append(
                Error(
                    f"SIGNALTRAIL['MODELS'] names {label!r}, which is not an installed model.",
                    hint="Use 'app_label.ModelName', e.g. 'shop.Product'.",
                    id="signaltrail.E003",
                )
            )
            continue
        if model is Event:
            errors.append(
                _event_error(model, "Remove 'signaltrail.Event' from SIGNALTRAIL['MODELS'].")
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
            else:
                errors.extend(
                    _field_errors(model, key, names, f"in SIGNALTRAIL['MODELS'][{label!r}]")
                )
    return errors


def _event_error(model: Any, hint: str) -> Error:
    return Error(
        "signaltrail cannot track its own Event model.", hint=hint, obj=model, id="signaltrail.E005"
    )


def _field_errors(model: type[models.Model], option: str, names: Any, where: str) -> list[Any]:
    """E004 for each name in ``option`` that is not a suitable field of ``model``."""
    errors: list[Any] = []
    label = model._meta.label
    if option == "m2m":
        for name in names:
            try:
                field = model._meta.get_field(name)
            except Exception:
                field = None
            if not isinstance(field, models.ManyToManyField):
                errors.append(
                    Error(
                        f"{label} is tracked with m2m={name!r} {where}, which is not a "
                        "many-to-many field of it.",
                        hint=_field_hint(model, many_to_many=True),
                        obj=model,
                        id="signaltrail.E004",
                    )
                )
        return errors
    known = {f.name for f in model._meta.get_fields()} | {
        f.attname for f in model._meta.concrete_fields
    }
    for name in sorted(set(names)):
        if name not in known:
            errors.append(
                Error(
                    f"{label} is tracked with {option}={name!r} {where}, but it has no such field.",
                    hint=_field_hint(model),
                    obj=model,
                    id="signaltrail.E004",
                )
            )
    return errors


def _field_hint(model: type[models.Model], many_to_many: bool = False) -> str:
    fields = model._meta.many_to_many if many_to_many else model._meta.concrete_fields
    names = [f.name for f in fields]
    if not names:
        return f"{model._meta.label} has no such fields."
    return f"Fields of {model._meta.label}: " + ", ".join(names) + "."


@register(Tags.models)
def check_tracked_models(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Options given to ``track()`` in code (settings are checked by check_settings)."""
    from .models import Event

    errors: list[Any] = []
    for opts in registry:
        if opts.source == "settings":
            continue
        model = opts.model
        if model is Event:
            errors.append(_event_error(model, "Remove the track() call on signaltrail's Event."))
            continue
        for option in ("exclude", "mask", "m2m"):
            names = getattr(opts, option)
            errors.extend(_field_errors(model, option, names, "in track()"))
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
    trail_at = _position(middleware, MIDDLEWARE)
    if tracked and trail_at is None:
        errors.append(
            Warning(
                "Models are tracked but TrailMiddleware is not in MIDDLEWARE: events "
                "written by views will have no actor, IP or request id.",
                hint=f"Add '{MIDDLEWARE}' after AuthenticationMiddleware.",
                id="signaltrail.W001",
            )
        )
    auth_at = _position(middleware, "django.contrib.auth.middleware.AuthenticationMiddleware")
    if trail_at is not None and auth_at is not None and trail_at < auth_at:
        errors.append(
            Warning(
                "TrailMiddleware comes before AuthenticationMiddleware.",
                hint="It still works (the actor is read lazily), but put it after "
                "AuthenticationMiddleware so request.user exists when events are written.",
                id="signaltrail.W003",
            )
        )
    return errors


def _position(middleware: list[Any], path: str) -> int | None:
    """Index of the first entry that is ``path`` or a subclass of it (a project may
    extend TrailMiddleware or AuthenticationMiddleware under its own name)."""
    try:
        wanted = import_string(path)
    except ImportError:
        wanted = None
    for i, entry in enumerate(middleware):
        if entry == path:
            return i
        if wanted is None or not isinstance(entry, str):
            continue
        try:
            found = import_string(entry)
        except Exception:
            continue  # Django reports unimportable middleware itself
        if isinstance(found, type) and issubclass(found, wanted):
            return i
    return None


@register(Tags.compatibility)
def check_background(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Where ``@in_background`` calls go: a bad value would only fail in a worker."""
    errors: list[Any] = []
    backend = conf.BACKGROUND
    if backend not in ("tasks", "celery"):
        errors.append(
            Error(
                f"SIGNALTRAIL['BACKGROUND'] is {backend!r}.",
                hint="Use 'tasks' (Django's tasks framework) or 'celery'.",
                id="signaltrail.E008",
            )
        )
    elif backend == "tasks":
        alias = conf.TASK_BACKEND
        tasks = getattr(settings, "TASKS", None) or {"default": {}}
        if not isinstance(alias, str) or alias not in tasks:
            errors.append(
                Error(
                    f"SIGNALTRAIL['TASK_BACKEND'] is {alias!r}, which is not a key of TASKS.",
                    hint="Known task backends: " + ", ".join(map(repr, tasks)) + ".",
                    id="signaltrail.E009",
                )
            )
    return errors
