"""The policy a sysadmin writes in YAML: who is who, and what happens on no answer."""

from .model import (
    Action,
    Announcement,
    Department,
    Employee,
    Policy,
    SiteDefaults,
)
from .loader import PolicyError, load_policy, parse_policy

__all__ = [
    "Action",
    "Announcement",
    "Department",
    "Employee",
    "Policy",
    "PolicyError",
    "SiteDefaults",
    "load_policy",
    "parse_policy",
]
