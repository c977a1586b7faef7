"""Load the demo users, catalogue and tasks into the example shop."""

import colorsys
import io
from decimal import Decimal

from accounts.models import Profile
from catalog.models import Category, Product, ProductImage, Tag
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models.signals import post_save
from tasks import services
from tasks.models import Project

import signaltrail

DEMO_PASSWORD = "signaltrail-demo"

CATALOGUE = [
    # name, category, price, limit per customer, description
    ("Hammer", "Tools", "12.50", 5, "A 500 g claw hammer with a hickory handle."),
    ("Screwdriver set", "Tools", "24.00", 3, "Six screwdrivers, slotted and Phillips."),
    ("Rake", "Garden", "18.00", 2, "A steel rake for leaves and soil."),
    ("Watering can", "Garden", "9.90", 4, "Ten litres, with a removable rose."),
    ("Chef's knife", "Kitchen", "39.00", 2, "A 20 cm stainless steel chef's knife."),
    ("Cast-iron pan", "Kitchen", "45.00", 1, "A 26 cm pan that lasts a lifetime."),
]


class Command(BaseCommand):
    help = (
        f"Create the demo users (admin, alice, bob; password {DEMO_PASSWORD!r}), a catalogue, "
        "tasks and a few changes, so the audit trail and the mailbox have something to "
        "show. Running it again changes nothing."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            self.stdout.write("Demo data already loaded.")
        else:
            with transaction.atomic():
                self.load(User)
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self.stdout.write(
            f"Log in as admin / {DEMO_PASSWORD} (staff), or alice / {DEMO_PASSWORD}, "
            f"bob / {DEMO_PASSWORD}."
        )

    def load(self, User):
        # The initial data is not history: keep it out of the trail (one
        # "trail_paused" event says it was skipped, and why) and don't
        # announce each product of the initial catalogue to the subscribers.
        # The welcome emails are kept: muting User's post_save would also
        # skip creating the profiles.
        with signaltrail.paused(reason="demo data"):
            admin = User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
            alice = User.objects.create_user("alice", "alice@example.com", DEMO_PASSWORD)
            bob = User.objects.create_user("bob", "bob@example.com", DEMO_PASSWORD)
            Profile.objects.filter(user=bob).update(language="id")  # bob reads Indonesian
            sale, _new, eco = (Tag.objects.create(name=n) for n in ("sale", "new", "eco"))
            categories = {}
            products = {}
            with signaltrail.muted(post_save, sender=Product):
                for i, (name, category, price, limit, description) in enumerate(CATALOGUE):
                    if category not in categories:
                        categories[category] = Category.objects.create(name=category)
                    product = Product.objects.create(
                        name=name,
                        category=categories[category],
                        price=Decimal(price),
                        limit_per_user=limit,
                        description=description,
                    )
                    add_image(product, i / len(CATALOGUE))
                    products[name] = product
            products["Watering can"].tags.add(eco)
            launch = Project.objects.create(name="Spring launch")
            Project.objects.create(name="Shop maintenance")

        # From here on, everything is recorded, as if people did it.
        with signaltrail.context(actor=admin, source="command", reason="demo: spring sale"):
            hammer = products["Hammer"]
            hammer.price = Decimal("9.99")  # a price drop: subscribers get an email
            hammer.save()
            hammer.tags.add(sale)
            rake = products["Rake"]
            rake.price = Decimal("19.50")  # a rise: recorded, no email
            rake.save()
        with signaltrail.context(actor=admin, source="command", reason="demo: new arrival"):
            gloves = Product.objects.create(
                name="Garden gloves",
                category=categories["Garden"],
                price=Decimal("7.50"),
                limit_per_user=3,
                description="Washable gloves with a firm grip.",
            )
            gloves.tags.add(eco)
            add_image(gloves, 0.8)

        with signaltrail.context(actor=alice, source="command", reason="demo: planning"):
            photos = services.create_task(
                title="Photograph the garden gloves",
                project=launch,
                created_by=alice,
                description="Three photos on a white background.",
                assignees=[bob],
            )
            banner = services.create_task(
                title="Update the spring sale banner", project=launch, created_by=alice
            )
            services.assign_task(banner, alice, by=alice)
            services.start_task(banner, by=alice)
            services.create_task(title="Check the stock of watering cans", created_by=alice)
        with signaltrail.context(actor=bob, source="command", reason="demo: work"):
            services.start_task(photos, by=bob)
            services.complete_task(photos, by=bob)  # alice is told, bob's statistics count it


def add_image(product, hue):
    """A generated picture (Pillow), so the demo ships no binary files."""
    from PIL import Image, ImageDraw, ImageFont

    r, g, b = (int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.35, 0.92))
    image = Image.new("RGB", (640, 480), (r, g, b))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    draw.text((320, 240), product.name, fill=(29, 35, 48), font=font, anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    slug = product.name.lower().replace(" ", "-").replace("'", "")
    ProductImage.objects.create(
        product=product,
        image=ContentFile(buffer.getvalue(), name=f"{slug}.png"),
        alt=product.name,
    )
