"""The routing decision: policy + caller + time → a plan. Pure: no I/O, no clock, no randomness
it was not handed."""

from .plan import Announce, Drop, Outcome, Plan, Ring, Step, Target, Voicemail
from .decide import decide

__all__ = ["Announce", "Drop", "Outcome", "Plan", "Ring", "Step", "Target", "Voicemail", "decide"]
