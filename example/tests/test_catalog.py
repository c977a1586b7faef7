"""The catalogue: history, new-product and price-drop emails, image removal, views."""

import logging
import os
import threading
from decimal import Decimal

import pytest
from catalog.models import Product, ProductImage, ProductView
from catalog.signals import product_viewed
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import close_old_connections, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import signaltrail

pytestmark = pytest.mark.django_db

NEW = "New in the shop"
DROP = "Price drop"


def subjects():
    return sorted(m.subject for m in mail.outbox)


# --- history -------------------------------------------------------------


def test_product_page_shows_each_change_with_old_new_actor_and_time(
    client, make_user, make_product
):
    admin = make_user("boss", staff=True)
    product = make_product(price="12.50")
    with signaltrail.context(actor=admin):
        product.price = Decimal("9.99")
        product.description = "Now cheaper"
        product.save()

    client.force_login(admin)
    response = client.get(product.get_absolute_url())

    assert response.status_code == 200
    history = response.content.decode().split('id="history"')[1]
    assert "boss" in history
    assert '<span class="old">12.50</span> → <span class="new">9.99</span>' in history
    assert '<span class="new">Now cheaper</span>' in history
    event = signaltrail.history(product).first()
    assert f'title="{event.at.isoformat()}"' in history  # when, to the second


def test_history_shows_related_names_masked_values_and_tags(client, make_user, make_product):
    from catalog.models import Category, Tag

    admin = make_user("boss", staff=True)
    product = make_product(supplier_api_key="secret-1")
    garden = Category.objects.create(name="Garden")
    sale = Tag.objects.create(name="sale")
    with signaltrail.context(actor=admin):
        product.category = garden
        product.supplier_api_key = "secret-2"
        product.save()
        product.tags.add(sale)

    client.force_login(admin)
    page = client.get(product.get_absolute_url()).content.decode()

    assert '<span class="old">Tools</span> → <span class="new">Garden</span>' in page
    assert "secret" not in page
    assert "(hidden)" in page
    assert '+ <span class="new">sale</span>' in page


def test_product_edit_form_is_recorded_with_the_request_user(client, make_user, make_product):
    admin = make_user("boss", staff=True)
    product = make_product(price="12.50")
    client.force_login(admin)

    response = client.post(
        reverse("catalog:edit", args=[product.pk]),
        {
            "name": "Hammer",
            "price": "11.00",
            "limit_per_user": 5,
            "category": product.category_id,
            "description": "",
        },
    )

    assert response.status_code == 302
    event = signaltrail.history(product).first()
    assert (event.action, event.actor, event.changes) == (
        "update",
        admin,
        {"price": ["12.50", "11.00"]},
    )
    assert event.context["path"] == reverse("catalog:edit", args=[product.pk])


def test_product_edit_needs_the_change_permission(client, make_user, make_product):
    product = make_product()
    client.force_login(make_user("alice"))
    response = client.get(reverse("catalog:edit", args=[product.pk]))
    assert response.status_code == 302  # to the login page
    assert response.url.startswith(reverse("login"))


# --- new product email ---------------------------------------------------------


def test_new_product_emails_every_subscriber_after_commit(
    make_user, make_product, django_capture_on_commit_callbacks
):
    make_user("alice")
    make_user("bob")
    make_user("carol", newsletter=False)
    make_user("dave", is_active=False)
    make_user("erin", email="")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        product = make_product(name="Rake")
        assert mail.outbox == []  # nothing is sent before the commit

    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com"]
    assert subjects() == [f"{NEW}: Rake"] * 2
    assert product.get_absolute_url() in mail.outbox[0].body


def test_new_product_email_reaches_a_real_smtp_server(
    smtp, make_user, make_product, django_capture_on_commit_callbacks
):
    make_user("alice")
    with django_capture_on_commit_callbacks(execute=True):
        make_product(name="Rake", price="18.00")

    [message] = smtp.with_subject(NEW)
    assert message.to == ["alice@example.com"]
    assert message.subject == f"{NEW}: Rake"
    assert "Rake is new in the shop, at 18.00." in message.body


def test_new_product_email_is_in_the_subscribers_language(
    make_user, make_product, django_capture_on_commit_callbacks
):
    make_user("budi", language="id")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        make_product(name="Rake")
    assert subjects() == ["Baru di toko: Rake"]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_creation_sends_nothing(smtp, make_user, make_product):
    make_user("alice")
    with pytest.raises(RuntimeError), transaction.atomic():
        make_product(name="Rake")
        raise RuntimeError("the order failed")

    assert not Product.objects.exists()
    assert smtp.with_subject(NEW) == []


# --- price drop email -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_price_drop_emails_subscribers_old_and_new_price_after_commit(
    smtp, make_user, make_product
):
    make_user("alice")
    make_user("carol", newsletter=False)
    product = make_product(price="12.50")

    with transaction.atomic():
        product.price = Decimal("9.99")
        product.save()
        assert smtp.with_subject(DROP) == []  # not before the commit

    [message] = smtp.with_subject(DROP)
    assert message.to == ["alice@example.com"]
    assert message.subject == f"{DROP}: Hammer"
    assert "dropped from 12.50 to 9.99" in message.body


@pytest.mark.django_db(transaction=True)
def test_rolled_back_price_drop_sends_nothing(smtp, make_user, make_product):
    make_user("alice")
    product = make_product(price="12.50")

    with pytest.raises(RuntimeError), transaction.atomic():
        product.price = Decimal("9.99")
        product.save()
        raise RuntimeError("rolled back")

    product.refresh_from_db()
    assert product.price == Decimal("12.50")
    assert smtp.with_subject(DROP) == []


def test_price_drop_in_a_rolled_back_savepoint_sends_nothing(
    make_user, make_product, django_capture_on_commit_callbacks
):
    make_user("alice")
    product = make_product(price="12.50")
    mail.outbox.clear()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        product.price = Decimal("9.99")
        product.save()
        raise RuntimeError("rolled back")
    assert callbacks == []
    assert mail.outbox == []


@pytest.mark.parametrize("new_price", ["12.50", "15.00"])
def test_no_email_when_the_price_stays_or_rises(
    make_user, make_product, django_capture_on_commit_callbacks, new_price
):
    make_user("alice")
    product = make_product(price="12.50")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        product.price = Decimal(new_price)
        product.save()
    assert mail.outbox == []


def test_creating_a_product_is_never_a_price_drop(
    make_user, make_product, django_capture_on_commit_callbacks
):
    make_user("alice")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        product = make_product(price="0.01")
    assert product._price_drop is None
    assert subjects() == [f"{NEW}: Hammer"]  # the announcement only


def test_price_is_compared_with_the_stored_price_not_the_instance(
    make_user, make_product, django_capture_on_commit_callbacks
):
    make_user("alice")
    product = make_product(price="12.50")
    first = Product.objects.get(pk=product.pk)
    stale = Product.objects.get(pk=product.pk)  # loaded at 12.50 too
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        first.price = Decimal("8.00")
        first.save()  # 12.50 -> 8.00: a drop
        stale.price = Decimal("10.00")
        stale.save()  # stored 8.00 -> 10.00: a rise, although the instance had 12.50

    assert len(mail.outbox) == 1
    assert "dropped from 12.50 to 8.00" in mail.outbox[0].body


def test_save_without_the_price_in_update_fields_does_not_read_the_stored_price(make_product):
    product = Product.objects.get(pk=make_product().pk)
    product.description = "x"
    with CaptureQueriesContext(connection) as ctx:
        product.save(update_fields=["description"])
    selects = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in selects if '"catalog_product"."price"' in sql]
    assert product._price_drop is None


# --- image files ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_deleting_a_product_removes_its_image_files_after_commit(make_product, add_image):
    product = make_product()
    first, second = add_image(product, "a.png"), add_image(product, "b.png")
    paths = [first.image.path, second.image.path]
    assert all(os.path.exists(p) for p in paths)

    with transaction.atomic():
        product.delete()
        assert all(os.path.exists(p) for p in paths)  # not before the commit

    assert not any(os.path.exists(p) for p in paths)
    assert not ProductImage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_delete_keeps_the_files(make_product, add_image):
    product = make_product()
    image = add_image(product)

    with pytest.raises(RuntimeError), transaction.atomic():
        product.delete()
        raise RuntimeError("rolled back")

    assert os.path.exists(image.image.path)
    assert ProductImage.objects.filter(pk=image.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_file_that_cannot_be_removed_is_logged_not_shown_to_the_user(
    client, make_user, make_product, add_image, media, caplog
):
    product = make_product()
    image = add_image(product)
    # Make the file impossible to remove: a non-empty directory of that name.
    path = media / image.image.name
    path.unlink()
    path.mkdir()
    (path / "keep").write_text("x")
    client.force_login(make_user("boss", staff=True))

    with caplog.at_level(logging.ERROR, logger="catalog"):
        response = client.post(
            reverse("admin:catalog_product_delete", args=[product.pk]), {"post": "yes"}
        )

    assert response.status_code == 302
    assert not Product.objects.filter(pk=product.pk).exists()
    assert [r.getMessage() for r in caplog.records if r.name == "catalog"] == [
        f"Could not remove the image file {image.image.name!r} of a deleted product image"
    ]


# --- product_viewed ------------------------------------------------------------


def test_a_signed_in_view_is_recorded_with_the_user_and_counted(client, make_user, make_product):
    user = make_user("alice")
    product = make_product()
    client.force_login(user)

    response = client.get(product.get_absolute_url())

    assert response.status_code == 200
    assert '<dd id="views">1</dd>' in response.content.decode()
    view = ProductView.objects.get()
    assert (view.product, view.user, view.session_key) == (product, user, "")
    product.refresh_from_db()
    assert product.view_count == 1


def test_an_anonymous_view_is_recorded_with_its_session(client, make_product):
    product = make_product()

    client.get(product.get_absolute_url())
    client.get(product.get_absolute_url())

    views = list(ProductView.objects.all())
    assert len(views) == 2
    assert {v.user for v in views} == {None}
    assert {v.session_key for v in views} == {client.session.session_key}
    assert client.session.session_key
    product.refresh_from_db()
    assert product.view_count == 2


def test_views_are_not_in_the_trail(client, make_product):
    product = make_product()
    before = signaltrail.history(product).count()
    client.get(product.get_absolute_url())
    assert signaltrail.history(product).count() == before


def test_the_page_sends_product_viewed_with_the_viewer(client, make_user, make_product):
    user = make_user("alice")
    product = make_product()
    received = []

    def listener(sender, **kwargs):
        received.append((sender, kwargs["product"], kwargs["user"]))

    product_viewed.connect(listener)
    try:
        client.force_login(user)
        client.get(product.get_absolute_url())
    finally:
        product_viewed.disconnect(listener)
    assert received == [(Product, product, user)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_views_are_all_counted(make_user, make_product):
    """Views from several threads at once: F() makes the database add, none is lost."""
    product = make_product()
    threads_count, views_each = 6, 5
    clients = []
    for i in range(threads_count):
        c = Client()
        c.force_login(make_user(f"viewer{i}"))
        clients.append(c)
    start = threading.Barrier(threads_count)
    errors = []

    def view(c):
        try:
            start.wait()
            for _ in range(views_each):
                assert c.get(product.get_absolute_url()).status_code == 200
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=view, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    product.refresh_from_db()
    assert product.view_count == threads_count * views_each
    assert ProductView.objects.count() == threads_count * views_each
    assert ProductView.objects.values("user").distinct().count() == get_user_model().objects.count()
