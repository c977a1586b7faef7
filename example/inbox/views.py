from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from .models import Message


@login_required
def mailbox(request):
    """The emails the shop sent: all of them for staff, a user's own for everyone else."""
    messages = Message.objects.all()
    if not request.user.is_staff:
        messages = (
            messages.filter(to__iexact=request.user.email)
            if request.user.email
            else messages.none()
        )
    page = Paginator(messages, 25).get_page(request.GET.get("page"))
    return render(request, "inbox/mailbox.html", {"page": page})
