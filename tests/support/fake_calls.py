"""Calls through a real CallEngine on the fake Asterisk (pbx_app.testing): the one helper the
unit tests use to place a call and read what the caller got and what the journal says.

    call = await call_on_fake("101", POLICY, phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    assert call.dials() == [(("PJSIP/101",), 3), (("PJSIP/102",), 5)]
    assert call.ended().result == "answered"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from pbx_app.calls.engine import CallEngine
from pbx_app.history.events import CallEnded, LegEnded, MemoryJournal
from pbx_app.history.records import CallRecord, fold
from pbx_app.policy import Policy, parse_policy
from pbx_app.testing import FakeAsterisk
from tests.support.wait import until

PolicySource = Union[str, Policy, Callable[[], Policy]]


def holder_of(policy: PolicySource) -> Callable[[], Policy]:
    """YAML text, a Policy, or already a holder (a PolicyStore: reloads reach new calls)."""
    if isinstance(policy, str):
        policy = parse_policy(policy)
    if isinstance(policy, Policy):
        return lambda: policy
    return policy


def engine_on(fake: FakeAsterisk, policy: PolicySource, app: str | None = None, **engine_kwargs: Any) -> CallEngine:
    """An engine connected to the fake (``app``: its ARI application; the fake's own by default).
    ``engine_kwargs`` go to CallEngine (journal, crm, clock, max_calls)."""
    ari = fake if app is None else fake.client(app)
    engine_kwargs.setdefault("journal", MemoryJournal())
    engine = CallEngine(ari, holder_of(policy), **engine_kwargs)
    fake.attach(engine)
    return engine


@dataclass
class FakeCall:
    fake: FakeAsterisk
    engine: CallEngine
    channel: str

    @property
    def actions(self) -> list[tuple]:
        """What the caller's channel went through: ("dial", endpoints, timeout), ("play", sound)..."""
        return self.fake.actions_for(self.channel)

    @property
    def events(self) -> list:
        return self.engine.journal.events

    def dials(self) -> list[tuple]:
        return [(a[1], a[2]) for a in self.actions if a[0] == "dial"]

    def legs(self) -> list[LegEnded]:
        return [e for e in self.events if isinstance(e, LegEnded)]

    def ended(self) -> CallEnded:
        [ended] = [e for e in self.events if isinstance(e, CallEnded)]
        return ended

    def record(self) -> CallRecord:
        [call] = fold(self.events)
        return call


async def call_over(fake: FakeAsterisk, engine: CallEngine, channel: str, timeout: float = 5.0) -> None:
    """Lets the fake play the call out until the caller is gone and the engine has no call left
    (real time too: a CRM lookup may sleep)."""

    async def over() -> bool:
        await fake.settle()
        return not fake.channels[channel].alive and not engine.calls and not engine.tasks

    await until(over, timeout, lambda: f"the call is still going: {fake.actions_for(channel)}", every=0.01)


async def call_on_fake(
    extension: str,
    policy: PolicySource,
    phones: dict[str, str] | None = None,
    talk_ends: str = "callee",
    voicemail: dict[str, bool] | None = None,
    fake: FakeAsterisk | None = None,
    **engine_kwargs: Any,
) -> FakeCall:
    """A client calls ``extension``; the phones behave as ``phones`` says (pbx_app.testing).
    Returns once the call is over. A test that sets the fake up itself (failing requests) passes
    it as ``fake`` instead of ``phones``/``talk_ends``/``voicemail``."""
    if fake is None:
        fake = FakeAsterisk(phones=phones, talk_ends=talk_ends, voicemail=voicemail)
    else:
        assert phones is None and voicemail is None and talk_ends == "callee", "set them on the fake"
    engine = engine_on(fake, policy, **engine_kwargs)
    channel = fake.new_call(extension)
    await call_over(fake, engine, channel)
    return FakeCall(fake, engine, channel)
