"""Names for signals, senders and receivers, as trace() and the signal map show them.

A signal has no name of its own, so it is named after the module-level
variable it is bound to (``django.db.models.signals.post_save``). When several
modules bind it (every ``from … import post_save`` does), the module whose
source *assigns* it wins. Names are cached per signal; modules are scanned
again only when more have been imported since.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from django.dispatch import Signal

# --------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------

_names: weakref.WeakKeyDictionary[Signal, str] = weakref.WeakKeyDictionary()
_names_lock = threading.Lock()
_scanned_modules = -1  # len(sys.modules) at the last scan


def module_signals() -> dict[int, tuple[Signal, list[tuple[str, str]]]]:
    """Every Signal bound at module level: id -> (signal, [(module, name)])."""
    found: dict[int, tuple[Signal, list[tuple[str, str]]]] = {}
    seen: set[int] = set()
    for modname, module in list(sys.modules.items()):
        if id(module) in seen:  # one module under two names (__main__, __mp_main__)
            continue
        seen.add(id(module))
        try:
            namespace = vars(module)
        except TypeError:
            continue
        for attr, value in list(namespace.items()):
            # type(), not isinstance(): never trigger a lazy object's __class__.
            if issubclass(type(value), Signal) and not attr.startswith("__"):
                found.setdefault(id(value), (value, []))[1].append((modname, attr))
    return found


@functools.cache
def _assigns(modname: str, attr: str) -> bool:
    """Whether ``modname``'s source assigns ``attr`` (defines it, not imports it)."""
    module = sys.modules.get(modname)
    path = getattr(module, "__file__", None) if module is not None else None
    if not path or not str(path).endswith(".py"):
        return False
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(rf"^{re.escape(attr)}\s*(:[^=\n]*)?=(?!=)", source, re.MULTILINE) is not None


def _best_name(bindings: list[tuple[str, str]]) -> str:
    def rank(binding: tuple[str, str]) -> tuple[Any, ...]:
        modname, attr = binding
        return (
            not _assigns(modname, attr),
            attr.startswith("_"),
            modname == "__main__",
            modname.rpartition(".")[2] != "signals",
            len(modname),
            modname,
            attr,
        )

    modname, attr = min(bindings, key=rank) if len(bindings) > 1 else bindings[0]
    return f"{modname}.{attr}"


def _unnamed(signal: Signal) -> str:
    return f"<unnamed {type(signal).__qualname__} at {id(signal):#x}>"


def _index() -> None:
    """Name every module-level signal not named yet (caller holds the lock)."""
    global _scanned_modules
    _scanned_modules = len(sys.modules)
    for signal, bindings in module_signals().values():
        if signal not in _names:
            _names[signal] = _best_name(bindings)


def signal_name(signal: Signal) -> str:
    """The dotted name of the module-level variable ``signal`` is bound to.

    Cached. A signal not found is looked for again only once more modules
    have been imported, so tracing an unnamed signal doesn't rescan each time.
    """
    name = _names.get(signal)
    if name is not None:
        return name
    with _names_lock:
        name = _names.get(signal)
        if name is None and _scanned_modules != len(sys.modules):
            _index()
            name = _names.get(signal)
    return name if name is not None else _unnamed(signal)


def sender_label(sender: Any) -> str:
    """``app_label.Model`` for models, ``repr()`` for anything else."""
    meta = getattr(sender, "_meta", None) if isinstance(sender, type) else None
    label = getattr(meta, "label", None)
    if isinstance(label, str):
        return label
    try:
        text = repr(sender)
    except Exception:
        text = object.__repr__(sender)
    return text if len(text) <= 200 else text[:199] + "…"


def receiver_name(receiver: Any) -> str:
    """``module.qualname`` of a receiver (function, method, partial or callable)."""
    if isinstance(receiver, functools.partial):
        return f"functools.partial({receiver_name(receiver.func)})"
    qualname = getattr(receiver, "__qualname__", None)
    module = getattr(receiver, "__module__", None)
    if not isinstance(qualname, str):  # a callable instance
        qualname = type(receiver).__qualname__
        module = type(receiver).__module__
    return f"{module}.{qualname}" if module else qualname


def receiver_location(receiver: Any) -> tuple[str | None, int | None]:
    """(source file, first line) of a receiver, when Python knows it."""
    target = receiver
    with contextlib.suppress(ValueError):  # a __wrapped__ cycle
        target = inspect.unwrap(target)
    if isinstance(target, functools.partial):
        return receiver_location(target.func)
    target = getattr(target, "__func__", target)
    code = getattr(target, "__code__", None)
    if code is None:
        code = getattr(type(target).__call__, "__code__", None)  # a callable instance
    if code is None:
        return None, None
    return code.co_filename, code.co_firstlineno
