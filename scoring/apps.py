from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Scoring"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from scoring import log

        request_finished.connect(log.flush_if_due, dispatch_uid="scoring.log.flush_if_due")
