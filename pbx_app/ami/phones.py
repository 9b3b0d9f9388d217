"""The callback service's phones through AMI (pbx_app/callback/phones.py): a phone's state from
DEVICE_STATE() and DeviceStateChange, the call to the employee by Originate straight into
pbx-callback (the variables ride on the Originate), and what happens on it from the events
OriginateResponse, UserEvent (the dialplan's reports), DialEnd and Hangup.

Needs read = call,user and write = originate,reporting (docs/fastagi.md). No Hangup action
(write = call would allow far more): the PBX ends our calls itself — Originate's timeout while
the employee's phone rings, Read()'s while they are asked to press 1."""

from __future__ import annotations

import logging
from typing import Protocol

from panoramisk.message import Message

from .. import contract as dp
from ..callback.phones import PhoneError, PhoneEvent
from ..callback.requests import CallbackRequest
from .client import AmiError, AmiRefused

log = logging.getLogger(__name__)

IN_USE = ("INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD")
# OriginateResponse's Reason (Asterisk's AST_CONTROL_*) as the hangup cause it stands for.
_REASON_CAUSE = {"3": "19", "5": "17", "8": "34"}  # ringing timed out, busy, congestion


class Actions(Protocol):
    async def action(self, fields: dict, timeout: float | None = None) -> Message: ...


class AmiPhones:
    def __init__(self, ami: Actions, owner: str):
        self.ami = ami
        self.owner = owner

    @staticmethod
    def translate(message: Message) -> list[PhoneEvent]:
        """An AMI event as the service's ([] when it is of no use)."""
        kind = message.get("Event")
        if kind == "DeviceStateChange":
            return [PhoneEvent("device", "", str(message.get("State") or ""))]
        if kind == "OriginateResponse":  # its ActionID is our channel's id (ring())
            channel = str(message.get("ActionID") or "")
            if message.get("Response") == "Success":
                return [PhoneEvent("answered", channel)]
            return [PhoneEvent("ended", channel, _REASON_CAUSE.get(str(message.get("Reason")), "0"))]
        channel = str(message.get("Uniqueid") or "")
        if kind == "Hangup":
            return [PhoneEvent("ended", channel, str(message.get("Cause") or "0"))]
        if kind == "DialEnd" and message.get("DialStatus") == "ANSWER":
            return [PhoneEvent("client_answered", channel)]  # our channel dialled (the client) and was answered
        if kind == "UserEvent" and message.get("UserEvent") == dp.REPORT:
            if dp.CB_PRESSED in message:
                return [PhoneEvent("pressed", channel, str(message.get(dp.CB_PRESSED) or ""))]
            if dp.CB_CLIENT in message:
                return [PhoneEvent("client", channel, str(message.get(dp.CB_CLIENT) or ""))]
        return []

    async def watch(self, endpoint: str) -> None:
        """Nothing to ask: the AMI user gets every DeviceStateChange (manager.conf filters the rest)."""

    async def in_use(self, endpoint: str) -> bool:
        state = await self._get(f"DEVICE_STATE({endpoint})")
        return state in IN_USE

    async def ring(self, channel_id: str, request: CallbackRequest, caller_id: str, ring_time: int,
                   variables: dict[str, str]) -> None:
        try:
            await self.ami.action({
                "Action": "Originate", "ActionID": channel_id, "ChannelId": channel_id,
                "Channel": request.endpoint, "Context": dp.CALLBACK, "Exten": request.client, "Priority": "1",
                "Timeout": str(ring_time * 1000), "Async": "true", "CallerID": caller_id,
                # Asterisk splits a Variable line at commas: none may be in a value.
                "Variable": [f"{name}={value.replace(',', ' ')}" for name, value in variables.items()],
            })
        except AmiError as exc:
            raise PhoneError(f"Originate: {exc}") from exc

    async def answered(self, channel_id: str) -> None:
        """Nothing to do: Originate put the answered channel in pbx-callback."""

    async def bridged(self, channel_id: str) -> bool:
        try:
            return bool(await self._get("BRIDGEPEER", channel_id))
        except PhoneError:
            return False

    async def alive(self, channel_id: str) -> bool:
        try:
            await self.ami.action({"Action": "Getvar", "Channel": channel_id, "Variable": "UNIQUEID"})
        except AmiRefused:
            return False  # No such channel
        except AmiError:
            return True  # cannot tell: assume it talks on
        return True

    async def hangup(self, channel_id: str) -> None:
        log.debug("callbacks: %s is left to end on its own (no Hangup over AMI)", channel_id)

    async def _get(self, variable: str, channel: str | None = None) -> str:
        fields = {"Action": "Getvar", "Variable": variable, **({"Channel": channel} if channel else {})}
        try:
            answer = await self.ami.action(fields)
        except AmiError as exc:
            raise PhoneError(f"Getvar {variable}: {exc}") from exc
        return str(answer.get("Value") or "")
