from django.db.models import ProtectedError
from django.utils.translation import gettext as _


class TaskInProgressError(ProtectedError):
    """Raised by a pre_delete receiver: a task in progress cannot be deleted.

    A ProtectedError, as for a PROTECT foreign key: the deletion is refused
    and, raised inside Django's delete transaction, nothing is deleted.
    """

    def __init__(self, task):
        self.task = task
        super().__init__(message(task), {task})


def message(task) -> str:
    return _(
        "“%(task)s” is in progress and cannot be deleted. Finish it or move it back to To do first."
    ) % {"task": task}
