"""What every SMTP session and the web inbox of one process share: the directory, the
delivery pipeline, the authenticator, the SMTP limits and the gateway's own mail.

Built once per process by the composition root (``gateway.app.gateway.Gateway.mail``) and
handed to the SMTP listeners, the web inbox (patient replies, read receipts), the IMAP
backend (the same authenticator, so failed logins are limited alike) and the outbound queue
worker (DSNs and bounces to local users go through the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gateway.accounts.auth import Authenticator
from gateway.accounts.oidc import verifier_from_settings
from gateway.accounts.token_login import TokenLogin
from gateway.delivery.directory import Directory
from gateway.delivery.documents import document_policy
from gateway.delivery.internal import InternalMail
from gateway.delivery.pipeline import Pipeline
from gateway.mailstore.quota import QuotaDefaults
from gateway.store.services import Services
from smtp.policy import Limits


@dataclass
class MailRuntime:
    """What every SMTP session (and the web inbox) shares in one process."""

    directory: Directory
    pipeline: Pipeline
    authenticator: Authenticator
    limits: Limits
    internal: InternalMail
    tokens: TokenLogin | None = None  # sign-in with access tokens ([auth.oidc]), same throttle

    @classmethod
    def build(cls, svc: Services) -> MailRuntime:
        s = svc.settings
        limits = Limits(max_message_size=s.smtp.max_message_size, max_recipients=s.smtp.max_recipients,
                        allow_plaintext_auth_on_loopback=s.tls.allow_auth_without_tls)
        quota = QuotaDefaults(s.quota.storage_kib, s.quota.messages)
        directory = Directory(svc.db, s.domains.patient_domain, keys=svc.keys, quota=quota)
        pipeline = Pipeline(svc.db, svc.keys, svc.hub, hostname=s.server.hostname,
                            queue_max_age=timedelta(hours=s.queue.max_age_hours),
                            notification_interval=timedelta(minutes=s.queue.notification_interval_minutes),
                            quota=quota, documents=document_policy(s.health_documents))
        authenticator = Authenticator.configured(svc.db, svc.keys, s.auth)
        verifier = verifier_from_settings(s)
        tokens = TokenLogin(svc.db, authenticator.throttle, verifier) if verifier is not None else None
        return cls(directory, pipeline, authenticator, limits, InternalMail(directory, pipeline), tokens)
