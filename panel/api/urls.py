from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api import views

router = SimpleRouter()
router.register("resellers", views.ResellerViewSet, basename="reseller")
router.register("domains", views.DomainViewSet, basename="domain")
router.register("mailboxes", views.MailboxViewSet, basename="mailbox")
router.register("forwardings", views.ForwardingViewSet, basename="forwarding")
router.register("audit", views.AuditEntryViewSet, basename="audit")

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("mailbox-password/", views.MailboxPasswordView.as_view(), name="mailbox-password"),
    *router.urls,
]
