"""Fixtures of the example shop's tests: a real SMTP server, users, products, a worker."""

import email
import email.policy
import io
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from accounts.models import Profile
from aiosmtpd.controller import Controller
from catalog.models import Category, Product, ProductImage
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import connection

EXAMPLE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Mail:
    to: list[str]
    subject: str
    body: str


@dataclass
class SMTPServer:
    """What the server received, in order; ``port`` is where it listens."""

    port: int = 0
    messages: list[Mail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",)).get_content()
        with self._lock:
            self.messages.append(Mail(list(envelope.rcpt_tos), str(message["subject"]), body))
        return "250 Message accepted for delivery"

    def to(self, address):
        return [m for m in self.messages if address in m.to]

    def with_subject(self, start):
        return [m for m in self.messages if m.subject.startswith(start)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(settings):
    """A real SMTP server (aiosmtpd) on loopback, and the shop's mail sent to it.

    Sending is synchronous: when ``send()`` returns, the server has answered
    the message's DATA, so the message is in ``smtp.messages`` already.
    """
    server = SMTPServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.port, "timeout": 10},
        }
    }
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def make_user(db):
    def make(username, *, newsletter=True, staff=False, language="", email=None, **extra):
        user = get_user_model().objects.create_user(
            username,
            f"{username}@example.com" if email is None else email,
            "pw",
            is_staff=staff,
            is_superuser=staff,
            **extra,
        )
        Profile.objects.filter(user=user).update(newsletter=newsletter, language=language)
        user.refresh_from_db()
        return user

    return make


@pytest.fixture
def category(db):
    return Category.objects.create(name="Tools")


@pytest.fixture
def make_product(category):
    def make(name="Hammer", price="12.50", **extra):
        return Product.objects.create(
            name=name, price=Decimal(price), category=extra.pop("category", category), **extra
        )

    return make


def png_bytes(color=(200, 80, 80)):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def media(settings, tmp_path):
    """A media directory of the test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def add_image(media):
    def add(product, name="photo.png"):
        return ProductImage.objects.create(
            product=product, image=ContentFile(png_bytes(), name=name), alt=product.name
        )

    return add


def shop_env(**extra):
    """Environment for a subprocess running the shop on the test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "SHOP_DB": connection.settings_dict["NAME"],
        "SHOP_DEBUG": "0",
    }
    env.pop("SHOP_SMTP_PORT", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(*args, env, timeout=120):
    return subprocess.run(
        [sys.executable, str(EXAMPLE_DIR / "manage.py"), *args],
        env=env,
        cwd=EXAMPLE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
