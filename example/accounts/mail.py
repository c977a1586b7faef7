"""Sending one email to one user, in that user's language.

Every email of the shop goes through :func:`send_to_user`: it renders
``<template>_subject.txt`` and ``<template>_body.txt`` with the recipient's
language active, so a subscriber who chose Indonesian gets Indonesian mail
whoever triggered it.
"""

from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import translation


def language_of(user: Any) -> str:
    profile = getattr(user, "profile", None)
    return (profile.language if profile is not None else "") or settings.LANGUAGE_CODE


def send_to_user(user: Any, template: str, context: dict[str, Any], key: str = "") -> bool:
    """Send ``template`` to ``user``; False (nothing sent) if the user has no address.

    ``key`` is the background call's idempotency key: a call may be delivered
    twice, and the Message-ID built from it lets the mailbox (or any mail
    system that dedupes on Message-ID) keep one copy.
    """
    if not user.email:
        return False
    context = {"user": user, "site_url": settings.SHOP_SITE_URL, **context}
    with translation.override(language_of(user)):
        subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
        body = render_to_string(f"{template}_body.txt", context)
    headers = {"Message-ID": f"<{key}.{user.pk}@signaltrail-shop>"} if key else {}
    EmailMessage(subject, body, to=[user.email], headers=headers).send()
    return True
