from django.apps import AppConfig


class OpsPortalConfig(AppConfig):
    name = "opsportal"
    verbose_name = "OpsPortal system"
