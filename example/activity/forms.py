from django import forms
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils.translation import gettext_lazy as _

from signaltrail.models import Event

from .diff import ACTION_LABELS


class ActivityFilterForm(forms.Form):
    """The Activity page's filters (a GET form: filtered pages can be bookmarked)."""

    actor = forms.CharField(
        label=_("Actor"),
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"list": "usernames"}),
    )
    model = forms.ModelChoiceField(
        label=_("Model"),
        queryset=ContentType.objects.none(),
        required=False,
        empty_label=_("any model"),
    )
    action = forms.ChoiceField(label=_("Action"), required=False)
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the models that have events, and their names in the active language.
        self.fields["model"].queryset = ContentType.objects.filter(
            pk__in=Event.objects.order_by().values("content_type").distinct()
        ).order_by("app_label", "model")
        self.fields["model"].label_from_instance = _model_label
        self.fields["action"].choices = [("", _("any action"))] + [
            (key, label) for key, label in ACTION_LABELS.items()
        ]
        self.usernames = (
            get_user_model().objects.order_by("username").values_list("username", flat=True)
        )

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("“From” must not be after “Until”."))
        return data

    def filter(self, events):
        data = self.cleaned_data
        if data.get("actor"):
            events = events.filter(actor_label__iexact=data["actor"].strip())
        if data.get("model"):
            events = events.filter(content_type=data["model"])
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("since"):
            events = events.filter(at__date__gte=data["since"])
        if data.get("until"):
            events = events.filter(at__date__lte=data["until"])
        return events


def _model_label(ct):
    model = ct.model_class()
    if model is None:
        return f"{ct.app_label}.{ct.model}"
    return f"{model._meta.app_config.verbose_name} · {model._meta.verbose_name}"
