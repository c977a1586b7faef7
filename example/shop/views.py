from accounts.models import Profile
from django.conf import settings
from django.views.decorators.http import require_POST
from django.views.i18n import set_language


@require_POST
def switch_language(request):
    """Django's set_language, which also keeps the choice for a signed-in user's emails."""
    response = set_language(request)
    language = request.POST.get("language")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        Profile.objects.filter(user=request.user).exclude(language=language).update(
            language=language
        )
    return response
