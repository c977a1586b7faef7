from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from .models import Task


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = ("title", "project", "description")
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class AssignForm(forms.Form):
    user = forms.ModelChoiceField(
        label=_("Assign to"),
        queryset=get_user_model().objects.filter(is_active=True),
        empty_label=_("choose someone"),
    )

    def __init__(self, *args, task=None, **kwargs):
        super().__init__(*args, **kwargs)
        if task is not None:
            self.fields["user"].queryset = self.fields["user"].queryset.exclude(
                pk__in=task.assignees.values("pk")
            )
