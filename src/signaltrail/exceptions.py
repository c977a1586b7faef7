"""Exceptions raised by signaltrail."""


class SignalTrailError(Exception):
    """Base class of signaltrail's own errors."""


class AppendOnlyError(SignalTrailError):
    """Raised on an attempt to change or delete an audit event."""


class RevertError(SignalTrailError):
    """Raised when an event cannot be reverted (and nothing was changed)."""
