"""The panel's URLs: the web pages (web.urls) and the provisioning API (api.urls)."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("api.urls")),
    path("", include("web.urls")),
]
