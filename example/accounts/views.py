from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from .forms import ProfileForm, SignupForm
from .models import Profile


def signup(request):
    if request.user.is_authenticated:
        return redirect("catalog:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # One transaction: the profile's language is set before the welcome
        # email, which runs after the commit, reads it.
        with transaction.atomic():
            user = form.save()
            Profile.objects.filter(user=user).update(language=request.LANGUAGE_CODE)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(
            request,
            _("Welcome, %(name)s! A welcome email is on its way to your mailbox.")
            % {"name": user.get_username()},
        )
        return redirect("catalog:list")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def profile(request):
    profile, _created = Profile.objects.get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Your settings were saved."))
        return redirect("accounts:profile")
    stats = getattr(request.user, "task_stats", None)
    return render(request, "accounts/profile.html", {"form": form, "stats": stats})
