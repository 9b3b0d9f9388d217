"""The contract between the call engines and the dialplan (dialplan/pbx_app.conf): the contexts
an engine sends a caller to, the channel variables it leaves there, and what the caller brings
back when the dialplan hands it to an engine. The flow, the recovery sweep and FakeAsterisk all
speak it through this module, so a name is spelled in one place.

Why variables on the channel: an engine keeps nothing a survivor could not rebuild. The plan,
the position in it, who owns the call, and what the dialplan must do if no engine is left all
live on the caller's channel."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---- ARI application names --------------------------------------------------------------------

APP_PREFIX = "pbx_app-"  # every engine's ARI app is pbx_app-<engine name>; PBX_ENGINES matches them
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def app_name(engine: str) -> str:
    """The ARI application of the engine called ``engine`` (host-pid, "1", "a"...)."""
    name = _NAME.sub("-", engine).strip("-") or "1"
    return APP_PREFIX + name


# ---- contexts -----------------------------------------------------------------------------------

DIRECT = "pbx-direct"  # where clients' calls come in; the broadcast to the engines happens here
DIAL = "pbx-dial"  # one ring: [announcement] + Dial(); back to the owner engine, else any engine, else the fallback
VOICEMAIL = "pbx-voicemail"  # [announcement] + VoiceMail(); the dialplan ends the call itself
FALLBACK_CONTEXT = "pbx-fallback"  # extension NOANSWER | BUSY | UNREACHABLE: PBX_FB's part for that outcome
END = "pbx-end"  # extension busy | message | callback: the last step of a plan that gives up
OFFER = "pbx-offer"  # a callback offer: answer, Read() one digit, back to the owner with it
CALLBACK = "pbx-callback"  # the employee answered a callback: Read() their 1, then Dial() the client
CALLBACK_ARG = "callback"  # Stasis argument of an employee's channel we originated for a callback
RECLAIM = "reclaim"  # label in pbx-dial: broadcast the caller again (its owner is gone)
APP_DOWN = "app-down"  # label in pbx-direct: no engine at all, ring the employee, then busy

# ---- channel variables an engine sets -------------------------------------------------------------

ENGINE = "PBX_ENGINE"  # the ARI app that owns the call: the caller comes back straight to it
# The plan, in both modes story/codec.py's packed text: whole in ARI mode, in up to four parts
# in FastAGI mode (an AGI command is at most 2048 bytes long).
PLAN = "PBX_PLAN"
PLAN_PARTS = (PLAN, "PBX_PLAN2", "PBX_PLAN3", "PBX_PLAN4")
CURSOR = "PBX_CURSOR"  # where the story stands in the plan: story.Cursor.encode()
# Every variable set on a channel an engine follows costs Asterisk a ChannelVarset message it
# builds for that engine (and the event filter then drops): a ring's settings travel packed.
RING = "PBX_RING"  # one ring: PackedRing.encode()
LEG = "PBX_LEG"  # CDR(userfield) of a voicemail leg: callid:leg:role:who[:fallback]
ANNOUNCE = "PBX_ANNOUNCE"  # a sound to play (early media) before the next Dial()/VoiceMail(); "" none
ANSWER_FIRST = "PBX_ANSWER_FIRST"  # "1": answer the caller before the announcement
MAILBOX = "PBX_MAILBOX"  # box@context for pbx-voicemail
OFFER_TIMEOUT = "PBX_OFFER_TIMEOUT"  # s the client has to press 1 (pbx-offer's Read())
# On the employee's channel of a callback (pbx-callback):
CB_LEG = "PBX_CB_LEG"  # CDR(userfield): callid:leg:callback:employee
CB_DIAL = "PBX_CB_DIAL"  # the client's Dial() string (the route with their number)
CB_RINGTIME = "PBX_CB_RINGTIME"
CB_CALLERID = "PBX_CB_CALLERID"  # what the client sees: the employee's number
# What the dialplan does if, after a ring, no engine takes the caller back, per Dial() outcome:
# Fallbacks.encode().
FALLBACKS = "PBX_FB"
# The owner's run (CallEngine.run_id): after an unanswered ring the dialplan carries the rest of the
# plan itself (pbx-carry: PBX_FB's part for the outcome, reported step by step) while that run is
# alive; set only when every branch after the first ring fits PBX_FB's shape (calls/fallback.carries),
# so nothing needs a new decision. The run, not the app's name: an engine restarted under the same
# name knows nothing of its predecessor's calls and must take them over from Stasis.
CARRY = "PBX_CARRY"
# The global each engine run refreshes with its clock (epoch seconds) every BEAT_EVERY: the dialplan
# lets a plan be carried only while its owner's beat is fresh, else the caller goes back to Stasis
# (the owner, else any engine: a take-over). A dialplan cannot see an ARI app's websocket.
ALIVE_PREFIX = "PBX_ALIVE_"
BEAT_EVERY = 0.5  # s; pbx-dial counts a beat older than 1 s (whole seconds) as a dead owner
_VARIABLE = re.compile(r"[^A-Za-z0-9_]+")


def alive_variable(run: str) -> str:
    """The global holding ``run``'s last beat; pbx-dial spells it ${FILTER(A-Za-z0-9_,${PBX_CARRY})}."""
    return ALIVE_PREFIX + _VARIABLE.sub("", run)

# ---- FastAGI mode (dialplan/pbx_agi.conf): what the server sets, what the dialplan keeps ---------
DO = "PBX_DO"  # the label of the next step in pbx-agi: ring | announce | voicemail | offer | callback | busy | hangup
STATE = "PBX_STATE"  # the signed cursor (agi/state.py), or "end" once the call's journal is closed
TO = "PBX_TO"  # the extension the next step runs under (the CDR's dst)
DIAL_STRING = "PBX_DIAL"  # a ring's Dial() string
RINGTIME = "PBX_RINGTIME"
WHISPER = "PBX_WHISPER"  # a ring: the callee first hears "forwarded call for" these digits (Dial U(pbx-whisper))
SOUND = "PBX_SOUND"  # Playback() name: an announcement, the drop message, the callback offer
ANSWER_NOW = "PBX_ANSWER"  # "1": answer the caller before the announcement
DIGIT = "PBX_DIGIT"  # the key the client pressed at a callback offer (Read())
# Story instruction → pbx-agi label (the drop message is played as an announcement).
AGI_LABELS = {"message": "announce"}
CDR_OFF = "CDR_PROP(disable)"
AGI_SECRET = "PBX_AGI_SECRET"  # the shared secret, a global from pbx_agi_secret.conf (agi/secret.py)

# ---- what the dialplan reports to the engine following the caller ---------------------------------
# UserEvent(PBX,<name>:<value>) reaches a subscribed engine as one ChannelUserevent. Reports are
# events, not channel variables: the engine's event filter can then refuse every ChannelVarset, of
# which Dial() and bridging set dozens per call, each serialised by Asterisk for the websocket.

REPORT = "PBX"  # the UserEvent's name
ANNOUNCED = "announced"  # PLAYBACKSTATUS of the announcement: SUCCESS or FAILED
VM_BEFORE = "vm_before"  # messages in the box before and after VoiceMail()
VM_AFTER = "vm_after"
ANSWERED = "answered"  # an answered ring, when it ends: DIALEDPEERNAME^ANSWEREDTIME_MS
CB_PRESSED = "cb_pressed"  # a callback: the digit the employee pressed ("" none)
CB_CLIENT = "cb_client"  # a callback: DIALSTATUS of the call to the client
DIALED = "dialed"  # a ring the dialplan carries on from (PBX_CARRY): DIALSTATUS^HANGUPCAUSE


def report(event: dict) -> tuple[str, str] | None:
    """(name, value) of a report from the dialplan, None for any other event."""
    if event.get("type") != "ChannelUserevent" or event.get("eventname") != REPORT:
        return None
    body = event.get("userevent") or {}
    for name, value in body.items():
        if name != "eventname":
            return str(name), str(value)
    return None


def dialed(value: str) -> tuple[str, str]:
    """A DIALED report → (DIALSTATUS, HANGUPCAUSE)."""
    status, _, cause = value.partition(FALLBACK_SEPARATOR)
    return status, cause


def answered(value: str) -> tuple[str, int]:
    """An ANSWERED report → (the channel that answered, milliseconds they talked)."""
    peer, _, talked = value.partition(FALLBACK_SEPARATOR)
    return peer, int(talked) if talked.isdigit() else 0


FALLBACK_SEPARATOR = "^"  # between the fields of a packed value: never in a dial string or a path
OUTCOME_SEPARATOR = "|"  # between the outcomes of PBX_FB
# The app-down file of an employee (calls/app_down.py, pbx-app-down): PBX_RING~PBX_FB, with
# CALL_PLACEHOLDER where the call's id goes (the dialplan puts the channel's UNIQUEID there).
APP_DOWN_SEPARATOR = "~"
CALL_PLACEHOLDER = "{call}"


@dataclass(frozen=True)
class PackedRing:
    """PBX_RING = dial^ringtime^userfield: what pbx-dial rings, for how long, and the CDR userfield
    of that leg. Dial() targets have '&' between the members of a group."""

    dial: str
    ringtime: int
    leg: str

    def encode(self) -> str:
        return FALLBACK_SEPARATOR.join((self.dial, str(self.ringtime), self.leg))

    @classmethod
    def decode(cls, text: str) -> "PackedRing":
        dial, ringtime, leg = (text.split(FALLBACK_SEPARATOR) + ["", "", ""])[:3]
        return cls(dial, int(ringtime or 0), leg)


@dataclass(frozen=True)
class Fallback:
    """What the dialplan does on its own when no engine takes the caller back after a ring: at most
    one more ring (with its announcement), then the plan's last step. Bounded: no loops."""

    dial: str = ""  # "" : no more ringing
    ringtime: int = 0
    announce: str = ""  # Playback() name
    leg: str = ""  # CDR(userfield) for that ring
    then: str = "busy"  # busy | message | voicemail
    mailbox: str = ""  # then=voicemail
    then_leg: str = ""  # CDR(userfield) for the voicemail leg
    exten: str = ""  # the extension the ring runs under: the CDR's dst (who is rung)
    then_exten: str = ""  # the mailbox owner's extension, likewise
    whisper: str = ""  # the ring's PBX_WHISPER (pbx-carry; the no-engine fallback does not whisper)
    cursor: str = ""  # the story's cursor during that ring (pbx-carry sets it: a survivor goes on from there)

    def encode(self) -> str:
        fields = (self.dial, str(self.ringtime) if self.dial else "", self.announce, self.leg, self.then,
                  self.mailbox, self.then_leg, self.exten, self.then_exten)
        if self.whisper or self.cursor:  # only a ring the dialplan may carry has them
            fields += (self.whisper, self.cursor)
        return FALLBACK_SEPARATOR.join(fields)

    @classmethod
    def decode(cls, text: str) -> "Fallback":
        parts = (text.split(FALLBACK_SEPARATOR) + [""] * 11)[:11]
        dial, ringtime, announce, leg, then, mailbox, then_leg, exten, then_exten, whisper, cursor = parts
        return cls(dial, int(ringtime or 0), announce, leg, then or "busy", mailbox, then_leg, exten, then_exten,
                   whisper, cursor)


@dataclass(frozen=True)
class Fallbacks:
    """PBX_FB = no-answer|busy|unreachable, each a Fallback; an empty busy or unreachable part means
    the same as no answer (after the first ring the three are always the same)."""

    no_answer: Fallback
    busy: Fallback | None = None
    unreachable: Fallback | None = None

    def encode(self) -> str:
        first = self.no_answer.encode()
        rest = ["" if f is None or f.encode() == first else f.encode() for f in (self.busy, self.unreachable)]
        return OUTCOME_SEPARATOR.join([first, *rest]).rstrip(OUTCOME_SEPARATOR)

    @staticmethod
    def pick(text: str, outcome: str) -> Fallback:
        """The Fallback for a DIALSTATUS-derived outcome (NOANSWER, BUSY, UNREACHABLE), as pbx-fallback picks it."""
        parts = (text.split(OUTCOME_SEPARATOR) + ["", "", ""])[:3]
        index = {"BUSY": 1, "UNREACHABLE": 2}.get(outcome, 0)
        return Fallback.decode(parts[index] or parts[0])


# ---- what the caller brings back ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """Why a caller is in an engine's Stasis app: ``what`` is direct (a new call to ``extension``),
    dialed (a ring ended: ``status`` DIALSTATUS, ``cause`` HANGUPCAUSE), offered (a callback offer
    ended: ``status`` the digit pressed, "" none), or something not ours."""

    what: str
    extension: str = ""
    status: str = ""
    cause: str = ""

    @property
    def ours(self) -> bool:
        return self.what in ("direct", "dialed", "offered")

    @classmethod
    def from_args(cls, args: list[str] | tuple[str, ...]) -> "Entry":
        """Stasis(app,direct,EXT) / Stasis(app,dialed,STATUS,CAUSE), or the colon-separated
        arguments of StasisBroadcast (direct:EXT, dialed:STATUS:CAUSE), which Asterisk splits."""
        what = args[0] if args else ""
        rest = list(args[1:])
        if what == "direct":
            return cls("direct", extension=rest[0] if rest else "")
        if what == "dialed":
            return cls("dialed", status=rest[0] if rest else "", cause=rest[1] if len(rest) > 1 else "")
        if what == "offered":
            return cls("offered", status=rest[0] if rest else "")
        return cls(what or "?")


def offered_new_call(channel: dict) -> bool:
    """A CallBroadcast carries no arguments (they come with the StasisStart after the claim):
    where the channel stands tells a new call (pbx-direct) from a caller back from a ring."""
    return (channel.get("dialplan") or {}).get("context") == DIRECT


@dataclass(frozen=True)
class Waiting:
    """A listed channel that sits in one of our Stasis applications (or is being broadcast to
    them): where it is in the dialplan, so a survivor can put it back on its way."""

    channel: dict
    context: str
    extension: str
    app: str  # the app named in Stasis(app,...); "" while it is being broadcast or was claimed
    args: tuple[str, ...]

    @property
    def where(self) -> tuple[str, ...]:
        return (self.context, self.extension, self.app, *self.args)


def waiting_in_stasis(channel: dict) -> Waiting | None:
    """The channel is executing Stasis(pbx_app-…) or StasisBroadcast() (claimed or not)."""
    dialplan = channel.get("dialplan") or {}
    app = (dialplan.get("app_name") or "").lower()
    data = (dialplan.get("app_data") or "").split(",")
    context, extension = dialplan.get("context") or "", dialplan.get("exten") or ""
    if app == "stasis" and data[0].startswith(APP_PREFIX):
        return Waiting(channel, context, extension, data[0], tuple(data[1:]))
    if app == "stasisbroadcast" and len(data) >= 3 and APP_PREFIX.rstrip("-") in data[1]:
        return Waiting(channel, context, extension, "", tuple(data[2].split(":")))
    return None


def way_back(waiting: Waiting) -> dict[str, str | int]:
    """Where to send a caller stranded in Stasis so that the engines are asked again: a new call
    is broadcast from the top of pbx-direct; a caller back from a ring from pbx-dial's reclaim."""
    if waiting.context in (DIAL, OFFER):
        return {"context": waiting.context, "extension": waiting.extension, "label": RECLAIM}
    return {"context": DIRECT, "extension": waiting.extension, "priority": 1}


def fallback_for(entry: Entry) -> dict[str, str]:
    """Where the dialplan goes on without us: a new call rings the employee (pbx-direct's
    app-down); a caller back from a ring follows the part of PBX_FB the engine left for that outcome."""
    if entry.what == "direct":
        return {"context": DIRECT, "extension": entry.extension, "label": APP_DOWN}
    if entry.what == "offered":  # no callback without an engine: what follows the offer
        return {"context": FALLBACK_CONTEXT, "extension": "NOANSWER"}
    outcome = {"BUSY": "BUSY", "NOANSWER": "NOANSWER"}.get(entry.status.upper(), "UNREACHABLE")
    return {"context": FALLBACK_CONTEXT, "extension": outcome}
