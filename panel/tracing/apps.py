from django.apps import AppConfig


class TracingConfig(AppConfig):
    name = "tracing"
    verbose_name = "Message tracing"
    default_auto_field = "django.db.models.BigAutoField"
