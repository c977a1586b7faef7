from django import forms

from .models import Product


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ("name", "price", "limit_per_user", "category", "tags", "description")
        widgets = {"tags": forms.CheckboxSelectMultiple}
