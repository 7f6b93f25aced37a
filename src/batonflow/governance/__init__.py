"""Governance: the audit trail, identities and approvals, redaction, data subjects, egress
control, alerts. See ``docs/governance.md``.

The store writes the audit trail (in the transaction of each change); this package reads and
signs it, and provides the policies the engine, the providers and the CLI apply.
"""

from batonflow.governance._alert_channels import (
    ALERT_KINDS,
    Alert,
    AlertChannel,
    SmtpChannel,
    WebhookChannel,
)
from batonflow.governance._alert_config import AlertSettings
from batonflow.governance._alert_hook import AlertHook, raise_alert
from batonflow.governance._alerts import AlertMonitor
from batonflow.governance._approval import (
    APPROVAL_TOPIC,
    ApprovalExpired,
    ApprovalRequest,
    Decision,
    approvals_of,
    decide,
    list_pending,
)
from batonflow.governance._audit import (
    AuditFilter,
    SignedHead,
    Verification,
    export,
    generate_signing_key,
    sign_head,
    verify_chain,
)
from batonflow.governance._connectors import ConnectorMap, ConnectorSwitches
from batonflow.governance._egress import EgressPolicy, egress_scope
from batonflow.governance._identity import (
    ACTIONS,
    ROLES,
    Identity,
    authenticate,
    authorize,
    create_identity,
    create_token,
    revoke_token,
)
from batonflow.governance._redaction import Redacted, RedactionPolicy
from batonflow.governance._redaction_rules import RedactionRules, Redactor, redaction_scope
from batonflow.governance._retention import Retention, parse_retention, purge
from batonflow.governance._subjects import (
    Erasure,
    SealedStore,
    erase_subject,
    export_subject,
    wrap_store,
)

__all__ = [
    "ACTIONS",
    "ALERT_KINDS",
    "APPROVAL_TOPIC",
    "Alert",
    "AlertChannel",
    "AlertHook",
    "AlertMonitor",
    "AlertSettings",
    "ApprovalExpired",
    "ApprovalRequest",
    "AuditFilter",
    "ConnectorMap",
    "ConnectorSwitches",
    "Decision",
    "EgressPolicy",
    "Erasure",
    "Identity",
    "ROLES",
    "Redacted",
    "RedactionPolicy",
    "RedactionRules",
    "Redactor",
    "Retention",
    "SealedStore",
    "SignedHead",
    "SmtpChannel",
    "Verification",
    "WebhookChannel",
    "approvals_of",
    "authenticate",
    "authorize",
    "create_identity",
    "create_token",
    "decide",
    "egress_scope",
    "erase_subject",
    "export",
    "export_subject",
    "generate_signing_key",
    "list_pending",
    "parse_retention",
    "purge",
    "raise_alert",
    "redaction_scope",
    "revoke_token",
    "sign_head",
    "verify_chain",
    "wrap_store",
]
