"""The provisioning API: the panel's operations as JSON, under the same permission model.

Every queryset is the caller's Scope's, so another tenant's object is a 404; related objects
named in a request (a domain for a new mailbox, a reseller for a new domain) are looked up in
the Scope too. Validation errors come back as 400 with the field's message.
"""

from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError as ModelValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import dkimstore, operations
from accounts.models import Domain, Forwarding, Mailbox
from api.serializers import (
    MIB,
    AuditEntrySerializer,
    DomainSerializer,
    ForwardingSerializer,
    MailboxSerializer,
    ResellerSerializer,
)
from tenancy.models import Role
from tenancy.scope import scope_for


def _invalid(error: ModelValidationError) -> serializers.ValidationError:
    if hasattr(error, "error_dict"):
        return serializers.ValidationError(error.message_dict)
    return serializers.ValidationError({"non_field_errors": error.messages})


def _in_scope(queryset, field: str, name: str):
    """The object named `name` in the caller's scope; a 400 on `field` otherwise."""
    obj = queryset.filter(name=name).first()
    if obj is None:
        raise serializers.ValidationError({field: [f"{name} is not yours"]})
    return obj


def _unchanged(obj, data: dict) -> None:
    """An address is never changed in place (its mail's home follows it): refuse, not ignore."""
    domain, local = data.pop("domain", None), data.pop("local_part", None)
    if (domain is not None and domain.pk != obj.domain_id) or (
        local is not None and local.strip().lower() != obj.local_part
    ):
        raise serializers.ValidationError(
            {"local_part": "an address cannot be changed; add a new one and remove this one"}
        )


class ScopedViewSet(viewsets.GenericViewSet):
    scope_queryset: str = ""

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema's dry run
            return self.serializer_class.Meta.model.objects.none()
        return getattr(self.request.scope, self.scope_queryset)()

    def perform_destroy(self, instance):
        operations.delete(self.request.scope.actor, instance)

    def handle_exception(self, exc):
        if isinstance(exc, ModelValidationError):
            exc = _invalid(exc)
        return super().handle_exception(exc)


class ResellerViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin):  # fmt: skip
    serializer_class = ResellerSerializer
    scope_queryset = "resellers"
    read_capability = "may_edit_brand"
    capability = {"create": "may_manage_resellers", "destroy": "may_manage_resellers",
                  "update": "may_edit_brand", "partial_update": "may_edit_brand"}  # fmt: skip

    def perform_create(self, serializer):
        serializer.instance = operations.save(self.request.scope.actor,
                                              serializer.Meta.model(**serializer.validated_data))  # fmt: skip

    def perform_update(self, serializer):
        data = serializer.validated_data
        if not self.request.scope.may_manage_resellers and any(
            field in data and data[field] != getattr(serializer.instance, field)
            for field in ("name", "enabled")
        ):
            raise PermissionDenied("only operators rename, enable or disable resellers")
        for field, value in data.items():
            setattr(serializer.instance, field, value)
        operations.save(self.request.scope.actor, serializer.instance)


class DomainViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin):  # fmt: skip
    serializer_class = DomainSerializer
    scope_queryset = "domains"
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    capability = {"create": "may_add_domains", "destroy": "may_add_domains",
                  "verify": "may_manage_mail"}  # fmt: skip

    def perform_create(self, serializer):
        data = serializer.validated_data
        reseller = _in_scope(self.request.scope.resellers(), "reseller", data["reseller"].name)
        domain = Domain(name=data["name"], reseller=reseller, enabled=data.get("enabled", True),
                        catch_all=data.get("catch_all", ""))  # fmt: skip
        try:
            operations.create_domain(self.request.scope.actor, domain)
        except dkimstore.SigningStoreError as error:
            raise serializers.ValidationError({"non_field_errors": [str(error)]}) from None
        serializer.instance = domain

    def perform_update(self, serializer):
        domain = serializer.instance
        data = serializer.validated_data
        if "reseller" in data and data["reseller"].pk != domain.reseller_id:
            if not self.request.scope.may_manage_resellers:
                raise PermissionDenied("only operators move domains between resellers")
            domain.reseller = data["reseller"]
        if data.get("name", domain.name) != domain.name:
            raise serializers.ValidationError({"name": "domains are never renamed"})
        for field in ("enabled", "catch_all"):
            if field in data:
                setattr(domain, field, data[field])
        operations.save(self.request.scope.actor, domain)

    def perform_destroy(self, instance):
        operations.remove_domain(self.request.scope.actor, instance, force=True)

    @action(detail=True, methods=["post"])
    def verify(self, request, name=None):
        """Check the ownership proof (TXT _mailstack-challenge.<domain>)."""
        domain = self.get_object()
        operations.prove_ownership(request.scope.actor, domain)
        return Response(DomainSerializer(domain).data)


class MailboxViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin):  # fmt: skip
    serializer_class = MailboxSerializer
    scope_queryset = "mailboxes"
    lookup_field = "address"
    lookup_value_regex = "[^/]+"
    capability = "may_manage_mail"

    def get_queryset(self):
        mailboxes = super().get_queryset()
        prefix = self.request.query_params.get("q", "").strip().lower().partition("@")[0]
        domain = self.request.query_params.get("domain")
        if domain:
            # One domain: paged and searched from the (domain, local part) indexes.
            mailboxes = mailboxes.filter(domain__name=domain.lower()).order_by("local_part")
            return mailboxes.filter(local_part__startswith=prefix) if prefix else mailboxes
        mailboxes = mailboxes.order_by("address")
        return mailboxes.filter(address__startswith=prefix) if prefix else mailboxes

    @transaction.atomic
    def _store(self, mailbox: Mailbox, data: dict) -> Mailbox:
        if "password" in data:
            operations.set_password(mailbox, data.pop("password"))
        if "quota_mib" in data:
            mailbox.quota_bytes = data.pop("quota_mib") * MIB
        for field, value in data.items():
            setattr(mailbox, field, value)
        return operations.save(self.request.scope.actor, mailbox)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        if "password" not in data:
            raise serializers.ValidationError({"password": "a new mailbox needs a password"})
        domain = _in_scope(self.request.scope.domains(), "domain", data.pop("domain").name)
        local = data.pop("local_part").strip().lower()
        if Mailbox.objects.filter(domain=domain, local_part=local).exists():
            raise serializers.ValidationError({"local_part": f"{local}@{domain.name} exists"})
        serializer.instance = self._store(Mailbox(domain=domain, local_part=local), data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        _unchanged(serializer.instance, data)
        self._store(serializer.instance, data)

    def perform_destroy(self, instance):
        operations.remove_mailbox(self.request.scope.actor, instance)


class ForwardingViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin):  # fmt: skip
    serializer_class = ForwardingSerializer
    scope_queryset = "forwardings"
    lookup_field = "address"
    lookup_value_regex = "[^/]+"
    capability = "may_manage_mail"

    def get_queryset(self):
        return super().get_queryset().prefetch_related("targets").order_by("address")

    def perform_create(self, serializer):
        data = serializer.validated_data
        domain = _in_scope(self.request.scope.domains(), "domain", data["domain"].name)
        forwarding = Forwarding(domain=domain, local_part=data["local_part"].strip().lower(),
                                keep_copy=data.get("keep_copy", False),
                                enabled=data.get("enabled", True))  # fmt: skip
        if Forwarding.objects.filter(domain=domain, local_part=forwarding.local_part).exists():
            raise serializers.ValidationError({"local_part": "that forwarding exists"})
        serializer.instance = operations.save_forwarding(
            self.request.scope.actor, forwarding, data["targets"]
        )

    def perform_update(self, serializer):
        forwarding, data = serializer.instance, dict(serializer.validated_data)
        _unchanged(forwarding, data)
        for field in ("keep_copy", "enabled"):
            if field in data:
                setattr(forwarding, field, data[field])
        targets = data.get("targets") or list(forwarding.targets.values_list("address", flat=True))
        operations.save_forwarding(self.request.scope.actor, forwarding, targets)


class AuditEntryViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = AuditEntrySerializer
    scope_queryset = "audit_entries"
    read_capability = "may_see_audit"


class MailboxPasswordSerializer(serializers.Serializer):
    address = serializers.CharField(max_length=320)
    current_password = serializers.CharField(trim_whitespace=False, max_length=1024)
    new_password = serializers.CharField(trim_whitespace=False, max_length=1024)


class MailboxPasswordView(APIView):
    """A mailbox user changes its own password with the current one, as a mail client (or
    webmail's password plugin) does: `POST` the form or JSON fields `address`,
    `current_password` and `new_password`. 200 `{"changed": true}`; 400 with the field's
    errors (the new password's strength); 401 for a wrong address or password, which counts
    towards the login throttling like a failed login (5 per address and client, then 15
    minutes of 429). The change goes through the operations (audit log, the sessions it ends)."""

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes = [FormParser, JSONParser]

    @extend_schema(request=MailboxPasswordSerializer, responses={200: dict})
    def post(self, request):
        form = MailboxPasswordSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = authenticate(
            request._request, username=data["address"], password=data["current_password"]
        )
        scope = scope_for(user)
        if getattr(request._request, "axes_locked_out", False):
            return Response({"detail": "too many failed attempts; try again later"}, status=429)
        if user is None or scope.role != Role.MAILBOX:
            return Response({"detail": "wrong address or password"}, status=401)
        mailbox = scope.mailboxes().get()
        try:
            operations.set_password(mailbox, data["new_password"])
            operations.save(scope.actor, mailbox)
        except ModelValidationError as error:
            messages = error.message_dict if hasattr(error, "error_dict") else {}
            return Response({"new_password": messages.get("password", error.messages)},
                            status=400)  # fmt: skip
        return Response({"changed": True})
