"""Load the demo users, catalogue and some history into the example shop."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

import signaltrail
from catalog.models import Category, Product, Tag

DEMO_PASSWORD = "signaltrail-demo"


class Command(BaseCommand):
    help = (
        "Create the demo users (admin, alice, bob; password 'signaltrail-demo'), a small "
        "catalogue and a few changes so the audit trail has something to show. Safe to run "
        "again: existing demo data is left as it is."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            self.stdout.write("Demo data already loaded.")
            return
        with signaltrail.context(actor="load_demo", reason="demo data", source="command"):
            admin = User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
            for name in ("alice", "bob"):
                User.objects.create_user(name, f"{name}@example.com", DEMO_PASSWORD)
            tools = Category.objects.create(name="Tools")
            garden = Category.objects.create(name="Garden")
            sale = Tag.objects.create(name="sale")
            Tag.objects.create(name="new")
            hammer = Product.objects.create(
                name="Hammer", price=Decimal("12.50"), stock=40, category=tools
            )
            Product.objects.create(name="Rake", price=Decimal("18.00"), stock=15, category=garden)
            Product.objects.create(
                name="Watering can", price=Decimal("9.90"), stock=25, category=garden
            )
        with signaltrail.context(actor=admin, reason="spring sale", source="command"):
            hammer.price = Decimal("9.99")
            hammer.save()
            hammer.tags.add(sale)
        self.stdout.write(
            self.style.SUCCESS(f"Demo data loaded. Log in as admin / {DEMO_PASSWORD}.")
        )
