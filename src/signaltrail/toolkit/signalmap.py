"""Which signals exist and who listens to them: ``manage.py trail signals``.

Receivers are read from ``Signal.receivers``, whose lookup keys Django builds
as ``(dispatch_uid or id(receiver), id(sender))``; this module maps them back
to names, source locations, sender labels and dispatch_uids. Senders known
only by id are looked up among the installed models.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import weakref
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from django.dispatch import Signal
from django.dispatch.dispatcher import NONE_ID
from django.utils.translation import gettext as _

from ._dispatch import _make_id
from .naming import (
    module_signals,
    receiver_location,
    receiver_name,
    sender_label,
    signal_name,
)

# --------------------------------------------------------------------------
# The map
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiverInfo:
    receiver: str
    file: str | None
    line: int | None
    sender: str  # "any", a model label, a repr, or "id 0x…" when unknown
    weak: bool
    is_async: bool
    dispatch_uid: Any


@dataclass(frozen=True)
class SignalInfo:
    name: str
    cls: str
    receivers: list[ReceiverInfo] = field(default_factory=list)


def _known_senders() -> dict[int, Any]:
    from django.apps import apps

    if not apps.ready:
        return {}
    models = apps.get_models(include_auto_created=True, include_swapped=True)
    return {id(model): model for model in models}


def describe(signal: Signal, senders: dict[int, Any] | None = None) -> list[ReceiverInfo]:
    """The live receivers connected to ``signal``, in connection order."""
    senders = _known_senders() if senders is None else senders
    infos = []
    for (key, sender_key), ref, sender_ref, is_async in list(signal.receivers):
        weak = isinstance(ref, weakref.ReferenceType)
        receiver = ref() if weak else ref
        if receiver is None:
            continue  # garbage-collected, not yet cleaned up by Django
        if sender_key == NONE_ID:
            sender = "any"
        else:
            obj = sender_ref() if sender_ref is not None else senders.get(sender_key)
            sender = sender_label(obj) if obj is not None else f"id {sender_key:#x}"
        file, line = receiver_location(receiver)
        infos.append(
            ReceiverInfo(
                receiver=receiver_name(receiver),
                file=file,
                line=line,
                sender=sender,
                weak=weak,
                is_async=bool(is_async),
                dispatch_uid=None if key == _make_id(receiver) else key,
            )
        )
    return infos


def all_signals() -> list[tuple[str, Signal]]:
    """(name, signal) for every Signal bound at module level, deduplicated, sorted."""
    return sorted(
        ((signal_name(signal), signal) for signal, _bindings in module_signals().values()),
        key=lambda item: item[0],
    )


def _select(signals: list[tuple[str, Signal]], wanted: list[str]) -> list[tuple[str, Signal]]:
    """Signals named by ``wanted``: full dotted names, or unambiguous short names."""
    chosen: dict[int, tuple[str, Signal]] = {}
    for query in wanted:
        hits = [item for item in signals if item[0] == query]
        if not hits:
            hits = [item for item in signals if item[0].rpartition(".")[2] == query]
        if len(hits) > 1:
            raise LookupError(
                _("Signal name %(name)r is ambiguous; use one of: %(names)s")
                % {"name": query, "names": ", ".join(name for name, _signal in hits)}
            )
        if not hits:
            names = [name for name, _signal in signals]
            close = difflib.get_close_matches(query, names, n=3, cutoff=0.5)
            close += difflib.get_close_matches(
                query, [n.rpartition(".")[2] for n in names], n=3, cutoff=0.6
            )
            if close:
                raise LookupError(
                    _(
                        "No signal named %(name)r in the loaded modules. Did you mean: "
                        "%(close)s? Run without --signal to list them all."
                    )
                    % {"name": query, "close": ", ".join(dict.fromkeys(close))}
                )
            raise LookupError(
                _(
                    "No signal named %(name)r in the loaded modules. "
                    "Run without --signal to list them all."
                )
                % {"name": query}
            )
        chosen[id(hits[0][1])] = hits[0]
    return sorted(chosen.values(), key=lambda item: item[0])


def signal_map(names: list[str] | None = None) -> list[SignalInfo]:
    """Describe every loaded signal, or only those in ``names`` (LookupError if unknown)."""
    signals = all_signals()
    if names:
        signals = _select(signals, names)
    senders = _known_senders()
    return [
        SignalInfo(
            name=name,
            cls=f"{type(signal).__module__}.{type(signal).__qualname__}",
            receivers=describe(signal, senders),
        )
        for name, signal in signals
    ]


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def to_json(infos: list[SignalInfo]) -> str:
    data = [
        {"signal": info.name, "class": info.cls, "receivers": [asdict(r) for r in info.receivers]}
        for info in infos
    ]
    return json.dumps(data, indent=2, default=repr)


def _short_path(path: str | None) -> str:
    """A path relative to the sys.path entry it lives under (shorter to read)."""
    if not path:
        return "?"
    best = path
    for entry in sys.path:
        entry = os.path.abspath(entry or ".")
        if path.startswith(entry + os.sep) and len(path) - len(entry) - 1 < len(best):
            best = path[len(entry) + 1 :]
    return best


def render(infos: list[SignalInfo], file: IO[str]) -> None:
    """One table per signal that has receivers, then the names of those without."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file, soft_wrap=False, highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 200)
    empty = []
    for info in infos:
        if not info.receivers:
            empty.append(info.name)
            continue
        title = Text.assemble((info.name, "bold"), "  ", (f"({info.cls})", "dim"))
        table = Table(title=title, title_justify="left")
        table.add_column(_("receiver"), overflow="fold")
        table.add_column(_("defined at"), overflow="fold")
        table.add_column(_("sender"), overflow="fold")
        table.add_column(_("reference"))
        table.add_column("dispatch_uid", overflow="fold")  # the argument's name, as in code
        for r in info.receivers:
            where = f"{_short_path(r.file)}:{r.line}" if r.line else _short_path(r.file)
            kind = _("weak") if r.weak else _("strong")
            if r.is_async:
                kind = _("%(reference)s, async") % {"reference": kind}
            uid = "" if r.dispatch_uid is None else str(r.dispatch_uid)
            table.add_row(*(Text(cell) for cell in (r.receiver, where, r.sender, kind, uid)))
        console.print(table)
    if empty:
        console.print(Text.assemble((_("No receivers:"), "bold"), " ", ", ".join(empty)))
    if not infos:
        console.print(_("No signals found in the loaded modules."))
