"""Signals sent by signaltrail."""

from django.dispatch import Signal

#: Sent after each event is written, in the same transaction.
#: Arguments: ``sender`` (the Event class) and ``event`` (the Event row).
event_recorded = Signal()
