"""What the callback service needs from the PBX, whichever way it talks to it (ARI in the
engines, AMI beside FastAGI): whether a phone is in use, a word when one goes idle, and a call
to the employee that runs pbx-callback once answered — then what happens on that call.

An implementation turns its own events into PhoneEvents for the service; the service keeps the
story (who was rung, what they pressed, whether the client answered) and the request's lease."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from .requests import CallbackRequest

PhoneEventKind = Literal[
    "device",  # a watched phone's state changed (value: NOT_INUSE, INUSE, …)
    "answered",  # the employee answered our call
    "ended",  # our call to the employee ended (value: the hangup cause)
    "pressed",  # the key the employee pressed at the prompt ("" none)
    "client",  # DIALSTATUS of the call to the client
    "client_answered",  # the client answered: they talk
    "other",  # another event of our channel, of no use to the story
]


@dataclass(frozen=True)
class PhoneEvent:
    kind: PhoneEventKind
    channel: str = ""  # our channel to the employee (its id / UNIQUEID); "" for device states
    value: str = ""


class PhoneError(Exception):
    """The PBX could not be asked or did not do what was asked (unreachable, refused)."""


class Phones(Protocol):
    owner: str  # who holds the requests' leases: the ARI app, or the AMI client's name

    async def watch(self, endpoint: str) -> None:
        """Send "device" events for this phone from now on (best effort: the periodic look remains)."""

    async def in_use(self, endpoint: str) -> bool:
        """A channel is on the phone now. Raises PhoneError when that cannot be known."""

    async def ring(self, channel_id: str, request: CallbackRequest, caller_id: str, ring_time: int,
                   variables: dict[str, str]) -> None:
        """Ring the employee on a channel named ``channel_id``; once they answer, the channel
        runs pbx-callback for the client's number with ``variables`` set. Raises PhoneError."""

    async def answered(self, channel_id: str) -> None:
        """The employee answered: send the channel on to pbx-callback (if ring() did not already)."""

    async def bridged(self, channel_id: str) -> bool:
        """The channel talks to someone (Dial() has bridged it with the client)."""

    async def alive(self, channel_id: str) -> bool:
        """The channel still exists (for when its end may have been missed)."""

    async def hangup(self, channel_id: str) -> None: ...
