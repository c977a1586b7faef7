from django.urls import path

from . import views

app_name = "tasks"
urlpatterns = [
    path("", views.board, name="board"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>/assign/", views.assign, name="assign"),
    path("<slug:slug>/unassign/<int:user_id>/", views.unassign, name="unassign"),
    path("<slug:slug>/delete/", views.delete, name="delete"),
    path(
        "<slug:slug>/<str:action>/",
        views.change_status,
        name="status",
    ),
]
