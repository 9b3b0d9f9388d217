"""Who is this client's responsible manager? The CRM answers before the call is decided: a static
mapping in the policy, or an HTTP webhook that never holds a call past its deadline."""

from .answer import CrmAnswer
from .directory import CrmDirectory, CrmProvider, lookup
from .static import static_answer
from .webhook import WebhookClient

__all__ = ["CrmAnswer", "CrmDirectory", "CrmProvider", "WebhookClient", "lookup", "static_answer"]
