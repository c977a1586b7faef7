from django.urls import path

from . import views

app_name = "inbox"
urlpatterns = [path("", views.mailbox, name="mailbox")]
