"""The callback service's phones through an engine's ARI app: the employee's channel is made in
the app (Stasis), then sent into pbx-callback once answered; device states come from the app's
subscription; the dialplan's reports arrive as ChannelUserevent."""

from __future__ import annotations

import logging

from .. import contract as dp
from ..ari import AriError
from ..ari.client import AriVerbs
from .phones import PhoneError, PhoneEvent
from .requests import CallbackRequest

log = logging.getLogger(__name__)


def _channel_ids(event: dict) -> list[str]:
    return [ch["id"] for key in ("channel", "caller") if isinstance(ch := event.get(key), dict) and "id" in ch]


class AriPhones:
    def __init__(self, ari: AriVerbs):
        self.ari = ari
        self.owner: str = ari.app  # type: ignore[attr-defined]
        self.waiting: dict[str, tuple[str, dict[str, str]]] = {}  # channel → (client, variables) until answered

    # ---- events -----------------------------------------------------------------------------------

    @staticmethod
    def translate(event: dict) -> list[PhoneEvent]:
        """The engine's event as the service's (one per channel it names; [] when none)."""
        kind = event.get("type")
        if kind == "DeviceStateChanged":
            return [PhoneEvent("device", "", str((event.get("device_state") or {}).get("state") or ""))]
        out: list[PhoneEvent] = []
        for cid in _channel_ids(event):
            if kind == "StasisStart":
                out.append(PhoneEvent("answered", cid))
            elif kind == "ChannelDestroyed":
                out.append(PhoneEvent("ended", cid, str(event.get("cause") or 0)))
            elif (report := dp.report(event)) and report[0] == dp.CB_PRESSED:
                out.append(PhoneEvent("pressed", cid, report[1]))
            elif report and report[0] == dp.CB_CLIENT:
                out.append(PhoneEvent("client", cid, report[1]))
                if report[1] == "ANSWER":  # they talked before a look at the bridges saw it
                    out.append(PhoneEvent("client_answered", cid))
            else:
                out.append(PhoneEvent("other", cid))
        return out

    # ---- the Phones verbs -------------------------------------------------------------------------

    async def watch(self, endpoint: str) -> None:
        try:
            await self.ari.post(f"/applications/{self.owner}/subscription", eventSource=f"deviceState:{endpoint}")
            log.debug("callbacks: watching the device state of %s", endpoint)
        except AriError as exc:
            log.info("callbacks: no device state events for %s (%s); the periodic look serves it", endpoint, exc)

    async def in_use(self, endpoint: str) -> bool:
        try:
            found = await self.ari.get(f"/endpoints/{endpoint}")
        except AriError as exc:
            raise PhoneError(str(exc)) from exc
        return bool((found or {}).get("channel_ids"))

    async def ring(self, channel_id: str, request: CallbackRequest, caller_id: str, ring_time: int,
                   variables: dict[str, str]) -> None:
        self.waiting[channel_id] = (request.client, variables)
        try:
            await self.ari.post("/channels", endpoint=request.endpoint, app=self.owner, appArgs=dp.CALLBACK_ARG,
                                channelId=channel_id, callerId=caller_id, timeout=ring_time)
        except AriError as exc:
            self.waiting.pop(channel_id, None)
            raise PhoneError(str(exc)[:200]) from exc

    async def answered(self, channel_id: str) -> None:
        client, variables = self.waiting.pop(channel_id)
        try:
            await self.ari.post(f"/applications/{self.owner}/subscription", eventSource=f"channel:{channel_id}")
            await self.ari.post(f"/channels/{channel_id}/variables", {"variables": variables})
            await self.ari.post(f"/channels/{channel_id}/continue", context=dp.CALLBACK, extension=client, priority=1)
        except AriError as exc:
            raise PhoneError(f"hung up at once ({exc.status})") from exc

    async def bridged(self, channel_id: str) -> bool:
        try:
            bridges = await self.ari.get("/bridges") or []
        except AriError as exc:
            log.warning("callbacks: cannot list bridges (%s)", exc)
            return False
        return any(channel_id in (b.get("channels") or []) for b in bridges)

    async def alive(self, channel_id: str) -> bool:
        try:
            await self.ari.get(f"/channels/{channel_id}")
        except AriError as exc:
            return exc.status != 404
        return True

    async def hangup(self, channel_id: str) -> None:
        self.waiting.pop(channel_id, None)
        try:
            await self.ari.delete(f"/channels/{channel_id}")
        except AriError:
            pass
