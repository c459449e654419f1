"""API representations; writes go through accounts.operations like the web pages' forms."""

from rest_framework import serializers

from accounts.audit import AuditEntry
from accounts.models import Domain, Forwarding, Mailbox, Reseller

MIB = 1024 * 1024


class ResellerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reseller
        fields = ["id", "name", "brand_name", "logo_url", "primary_colour", "secondary_colour",
                  "panel_hostname", "webmail_hostname", "enabled"]  # fmt: skip


class DomainSerializer(serializers.ModelSerializer):
    reseller = serializers.SlugRelatedField(slug_field="name", queryset=Reseller.objects.all())
    verification_record = serializers.SerializerMethodField()

    class Meta:
        model = Domain
        fields = ["id", "name", "reseller", "enabled", "catch_all", "ownership",
                  "verification_record", "created"]  # fmt: skip
        read_only_fields = ["ownership", "created"]

    def get_verification_record(self, domain: Domain) -> dict:
        from accounts.dnscheck import challenge_name

        return {"name": challenge_name(domain.name), "type": "TXT",
                "value": domain.verification_token}  # fmt: skip


class MailboxSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="name", queryset=Domain.objects.all())
    # Folded to lower case before the model's own check (accounts.addresses).
    local_part = serializers.CharField(max_length=64)
    password = serializers.CharField(write_only=True, required=False, trim_whitespace=False)
    quota_mib = serializers.IntegerField(min_value=0, required=False)

    class Meta:
        model = Mailbox
        fields = ["id", "address", "domain", "local_part", "password", "quota_mib", "enabled",
                  "spam_add_header_score", "spam_reject_score", "created"]  # fmt: skip
        read_only_fields = ["address", "created"]

    def to_representation(self, mailbox):
        data = super().to_representation(mailbox)
        data["quota_mib"] = mailbox.quota_bytes // MIB
        return data


class ForwardingSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="name", queryset=Domain.objects.all())
    local_part = serializers.CharField(max_length=64)
    targets = serializers.ListField(
        child=serializers.CharField(max_length=320), min_length=1, write_only=True
    )

    class Meta:
        model = Forwarding
        fields = ["id", "address", "domain", "local_part", "targets", "keep_copy", "enabled"]
        read_only_fields = ["address"]

    def to_representation(self, forwarding):
        data = super().to_representation(forwarding)
        data["targets"] = [t.address for t in forwarding.targets.all()]
        return data


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "actor_role", "action", "object_type", "object_name",
                  "before", "after"]  # fmt: skip
