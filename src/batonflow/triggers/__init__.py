"""Triggers: runs that start by themselves, each exactly once across every process.

Schedules (cron in an IANA time zone, fixed intervals, a delay after the previous run) with
Temporal's overlap policies and catch-up window; mailboxes; webhooks (``POST /hooks/NAME``,
Standard Webhooks signatures). Configured in ``batonflow.toml`` (``[triggers.schedules.NAME]``,
``[triggers.mailboxes.NAME]``, ``[triggers.webhooks.NAME]``) and in a workflow document's
``schedule`` and ``metadata.batonflow``. See ``docs/triggers.md``.
"""

from batonflow.triggers._host import (
    TriggerHost,
    document_schedule,
    document_target,
    load_schedules,
    workflow_target,
)
from batonflow.triggers._mailbox import MailboxSettings, MailboxTrigger
from batonflow.triggers._schedule import Overlap, ScheduleSpec
from batonflow.triggers._scheduler import ScheduleTrigger, Target, run_id_for
from batonflow.triggers._webhook import Webhooks, WebhookSettings, WebhookTrigger

__all__ = [
    "MailboxSettings",
    "MailboxTrigger",
    "Overlap",
    "ScheduleSpec",
    "ScheduleTrigger",
    "Target",
    "TriggerHost",
    "WebhookSettings",
    "WebhookTrigger",
    "Webhooks",
    "document_schedule",
    "document_target",
    "load_schedules",
    "run_id_for",
    "workflow_target",
]
