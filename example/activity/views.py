from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import render

from signaltrail.models import Event

from .forms import ActivityFilterForm

PAGE_SIZE = 50


@login_required
def activity(request):
    """The whole trail, newest first, with filters: staff only."""
    if not request.user.is_staff:
        raise PermissionDenied
    form = ActivityFilterForm(request.GET or None)
    events = Event.objects.select_related("content_type").newest_first()
    if form.is_bound and form.is_valid():
        events = form.filter(events)
    elif form.is_bound:
        events = events.none()
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "activity/activity.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )
