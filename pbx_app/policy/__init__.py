"""The policy a sysadmin writes in YAML: who is who, and what happens on no answer."""

from .model import (
    Absence,
    Action,
    Announcement,
    CrmRule,
    CrmSettings,
    Department,
    Employee,
    Policy,
    Schedule,
    SiteDefaults,
    TimeRange,
    WebhookSettings,
    normalise_number,
)
from .problems import PolicyError, Problem
from .loader import Analysis, analyse_file, analyse_policy, load_policy, parse_policy

__all__ = [
    "Absence",
    "Action",
    "Analysis",
    "Announcement",
    "CrmRule",
    "CrmSettings",
    "Department",
    "Employee",
    "Policy",
    "PolicyError",
    "Problem",
    "Schedule",
    "SiteDefaults",
    "TimeRange",
    "WebhookSettings",
    "analyse_file",
    "analyse_policy",
    "load_policy",
    "normalise_number",
    "parse_policy",
]
