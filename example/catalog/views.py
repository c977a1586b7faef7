from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

import signaltrail

from .forms import ProductForm
from .models import Category, Product, ProductImage
from .signals import product_viewed

HISTORY_LENGTH = 50


def product_list(request):
    products = Product.objects.select_related("category").prefetch_related(
        "tags", Prefetch("images", queryset=ProductImage.objects.order_by("position", "id"))
    )
    category = request.GET.get("category")
    if category and category.isdigit():
        products = products.filter(category_id=category)
    return render(
        request,
        "catalog/product_list.html",
        {
            "products": products,
            "categories": Category.objects.all(),
            "category": int(category) if category and category.isdigit() else None,
        },
    )


def product_detail(request, pk):
    product = get_object_or_404(
        Product.objects.select_related("category").prefetch_related("tags", "images"), pk=pk
    )
    if not request.user.is_authenticated and request.session.session_key is None:
        # An anonymous viewer is told apart by the session: create it now, and
        # mark it modified so the session middleware sends its cookie.
        request.session.save()
        request.session.modified = True
    signed_in = request.user.is_authenticated
    product_viewed.send(
        sender=Product,
        product=product,
        user=request.user if signed_in else None,
        session_key="" if signed_in else request.session.session_key,
    )
    product.refresh_from_db(fields=["view_count"])
    history = signaltrail.history(product).select_related("content_type")[:HISTORY_LENGTH]
    return render(request, "catalog/product_detail.html", {"product": product, "history": history})


@permission_required("catalog.change_product")
def product_edit(request, pk):
    product = get_object_or_404(Product, pk=pk)
    form = ProductForm(request.POST or None, instance=product)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("“%(name)s” was saved.") % {"name": product.name})
        return redirect(product)
    return render(request, "catalog/product_form.html", {"form": form, "product": product})
