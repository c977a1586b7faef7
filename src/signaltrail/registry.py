"""Which models are tracked, and how.

``track()`` only records the wish; :mod:`signaltrail.capture` installs the
receivers. Options are validated by the system checks (``signaltrail.E0xx``)
rather than here, so a typo in a field name is reported by ``manage.py check``
instead of crashing the project at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar, overload

from django.db import models

from .conf import MASK, conf
from .serialization import Serializer, is_mutable, serializer_for

M = TypeVar("M", bound=type[models.Model])


@dataclass(frozen=True)
class FieldPlan:
    """What the trail needs to know about one recorded field, computed once."""

    name: str
    attname: str
    field: models.Field
    serialize: Serializer
    masked: bool
    mutable: bool

    def record(self, value: Any) -> Any:
        if self.masked:
            return None if value is None else MASK
        return self.serialize(value)


@dataclass
class TrackOptions:
    """The tracking options of one model."""

    model: type[models.Model]
    exclude: frozenset[str] = frozenset()
    mask: frozenset[str] = frozenset()
    m2m: tuple[str, ...] = ()
    source: str = "code"  # "code" or "settings": where it was declared

    @cached_property
    def fields(self) -> tuple[FieldPlan, ...]:
        """The concrete fields recorded for this model, in model order."""
        exclude = self.exclude | set(_names(conf.GLOBAL_EXCLUDE))
        mask = self.mask | set(_names(conf.GLOBAL_MASK))
        plans = []
        for f in self.model._meta.concrete_fields:
            if f.name in exclude or f.attname in exclude:
                continue
            plans.append(
                FieldPlan(
                    name=f.name,
                    attname=f.attname,
                    field=f,
                    serialize=serializer_for(f),
                    masked=f.name in mask or f.attname in mask,
                    mutable=is_mutable(f),
                )
            )
        return tuple(plans)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The names of :attr:`fields`, in the same order."""
        return tuple(plan.name for plan in self.fields)

    @cached_property
    def mutable_attnames(self) -> frozenset[str]:
        return frozenset(f.attname for f in self.model._meta.concrete_fields if is_mutable(f))

    @cached_property
    def plain_row_length(self) -> int:
        """How many values a full row of the model has, or -1 if some are mutable.

        ``from_db`` keeps such a row as it is (:mod:`signaltrail.snapshot`);
        mutable values have to be copied first.
        """
        return -1 if self.mutable_attnames else len(self.model._meta.concrete_fields)

    @cached_property
    def m2m_fields(self) -> tuple[models.ManyToManyField, ...]:
        found = []
        for name in self.m2m:
            try:
                f = self.model._meta.get_field(name)
            except Exception:
                continue  # reported by signaltrail.E004
            if isinstance(f, models.ManyToManyField):
                found.append(f)
        return tuple(found)


@dataclass
class Registry:
    """All tracked models, keyed by model class."""

    _options: dict[type[models.Model], TrackOptions] = field(default_factory=dict)

    def register(self, options: TrackOptions) -> TrackOptions:
        self._options[options.model] = options
        return options

    def unregister(self, model: type[models.Model]) -> None:
        self._options.pop(model, None)

    def options_for(self, model: type[models.Model]) -> TrackOptions | None:
        """Options for ``model``; a proxy model shares its concrete model's."""
        opts = self._options.get(model)
        if opts is None and model._meta.proxy:
            opts = self._options.get(model._meta.concrete_model)
        return opts

    def __contains__(self, model: object) -> bool:
        return isinstance(model, type) and self.options_for(model) is not None  # type: ignore[arg-type]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._options.values()))


registry = Registry()


@overload
def track(
    model: None = None,
    *,
    exclude: Iterable[str] = (),
    mask: Iterable[str] = (),
    m2m: Iterable[str] = (),
) -> Any: ...
@overload
def track[M: type[models.Model]](
    model: M,
    *,
    exclude: Iterable[str] = (),
    mask: Iterable[str] = (),
    m2m: Iterable[str] = (),
) -> M: ...
def track(
    model: Any = None,
    *,
    exclude: Iterable[str] = (),
    mask: Iterable[str] = (),
    m2m: Iterable[str] = (),
) -> Any:
    """Record every change to ``model``.

    ``exclude`` lists fields never recorded, ``mask`` fields recorded as
    ``"***"``, ``m2m`` the many-to-many fields whose add/remove/clear are
    recorded. Usable as ``track(Model, ...)`` and as a class decorator,
    ``@track(exclude=[...])`` or plain ``@track``.
    """
    if isinstance(exclude, str) or isinstance(mask, str) or isinstance(m2m, str):
        raise TypeError("exclude, mask and m2m take lists of field names, not a string.")

    def decorate(cls: M) -> M:
        from .capture import install

        options = TrackOptions(
            model=cls,
            exclude=frozenset(exclude),
            mask=frozenset(mask),
            m2m=tuple(dict.fromkeys(m2m)),
        )
        install(registry.register(options))
        return cls

    if model is None:
        return decorate
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise TypeError(f"track() expects a model class, got {model!r}.")
    return decorate(model)


def _names(value: Any) -> list[str]:
    """The strings of a list setting; anything else counts as empty.

    A malformed setting is reported by the system checks; it must not crash
    start-up or the user's saves.
    """
    if not isinstance(value, list | tuple | set | frozenset):
        return []
    return [v for v in value if isinstance(v, str)]


def clear_plans(**kwargs: Any) -> None:
    """Forget the per-model field plans (they depend on GLOBAL_EXCLUDE/MASK)."""
    if kwargs.get("setting") not in (None, "SIGNALTRAIL"):
        return
    for options in registry:
        options.__dict__.pop("fields", None)
        options.__dict__.pop("names", None)


def _string_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def settings_entries() -> dict[type[models.Model], dict[str, Any]]:
    """The models ``SIGNALTRAIL`` asks to track, with their options.

    Invalid entries are skipped here and reported by the system checks.
    """
    from django.apps import apps

    from .conf import ALWAYS_EXCLUDED

    raw = conf.raw
    if raw is not None and not isinstance(raw, dict):
        return {}
    wanted: dict[type[models.Model], dict[str, Any]] = {}
    excluded = {label.lower() for label in _names(conf.EXCLUDE_MODELS)}
    if conf.ALL_MODELS is True:
        for model in apps.get_models():
            label = model._meta.label
            if (
                model._meta.proxy
                or model._meta.auto_created
                or label in ALWAYS_EXCLUDED
                or label.lower() in excluded
                or model._meta.app_label in excluded
            ):
                continue
            m2m = [f.name for f in model._meta.local_many_to_many]
            wanted[model] = {"m2m": m2m}
    models_setting = conf.MODELS
    if isinstance(models_setting, dict):
        for label, options in models_setting.items():
            if not isinstance(label, str):
                continue
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError, TypeError):
                continue
            options = options if options is not None else {}
            if not isinstance(options, dict) or not all(
                k in TRACK_OPTIONS and _string_list(v) for k, v in options.items()
            ):
                continue
            wanted[model] = {**wanted.get(model, {}), **options}
    return wanted


TRACK_OPTIONS = ("exclude", "mask", "m2m")


def register_from_settings() -> None:
    from .capture import install

    for model, options in settings_entries().items():
        if model in registry._options and registry._options[model].source == "code":
            continue  # track() in code wins over settings
        install(
            registry.register(
                TrackOptions(
                    model=model,
                    exclude=frozenset(options.get("exclude", ())),
                    mask=frozenset(options.get("mask", ())),
                    m2m=tuple(options.get("m2m", ())),
                    source="settings",
                )
            )
        )
