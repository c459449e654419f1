from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Panel users and their permissions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from tenancy.models import Profile, Role

        def drop_mailbox_user(sender, instance: Profile, **_) -> None:
            # The Django user standing for a removed mailbox goes with it.
            if instance.role == Role.MAILBOX:
                type(instance.user).objects.filter(pk=instance.user_id).delete()

        post_delete.connect(drop_mailbox_user, sender=Profile, weak=False)
