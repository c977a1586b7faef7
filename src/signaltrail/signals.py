"""Signals sent by signaltrail."""

from django.dispatch import Signal

#: Sent after each event is written, in the same transaction.
#: Arguments: ``sender`` (the Event class) and ``event`` (the Event row).
event_recorded = Signal()

#: Sent before ``QuerySet.update()`` writes a batch of rows of a tracked model
#: (once per batch of up to ``BULK_BATCH_SIZE`` rows).
#: Arguments: ``sender`` (the model), ``pks`` (the rows about to change),
#: ``fields`` (the names given to update()), ``using``.
pre_bulk_update = Signal()

#: Sent after ``QuerySet.update()`` (per batch) or ``bulk_update()`` (per call)
#: changed rows of a tracked model. Arguments: ``sender``, ``pks``, ``fields``,
#: ``using``.
post_bulk_update = Signal()

#: Sent after ``bulk_create()`` inserted objects of a tracked model.
#: Arguments: ``sender``, ``objs`` (the objects known to be inserted), ``using``.
post_bulk_create = Signal()
