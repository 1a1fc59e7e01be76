"""URLs of the newsroom demo site: the admin, log in/out, and the newsroom app."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Strata's personal holes (the hello box, CSRF tokens of forms on shared pages).
    path("-/", include("strata.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="newsroom/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("newsroom.urls")),
]
