"""Matchers: when is a client event "the same" as the recorded one (VCR.py ``match_on`` style).

A matcher is a small named function ``(received, recorded, ctx) -> None``: it returns quietly
when the two events agree on what it checks and raises ``AssertionError("what differs")`` when
they do not (returning ``False`` also counts as a failure, with a generic message). It only
looks at the event types it is about and passes the others. ``ctx`` is a :class:`MatchContext`:
the name/id bindings, the models, the content blocks of both sides.

Default matching is **lenient** (interfaces.md): the shipped cassettes are replayed by different
clients (the SDK driver, the project's LiveKit plugin, the upstream LiveKit plugin), each with its
own system prompt, tool schemas, inference parameters and voice. What decides the service's
answer is compared; the rest is opt-in:

=======================  ============================================================  =========
name                     checks                                                        default
=======================  ============================================================  =========
``event_type``           same event name (always checked first, even when not listed)  yes
``model``                the stream's model id equals the recording's (sessionStart)   yes
``content_kind``         contentStart: same type, role and ``interactive``             yes
``names``                promptName/contentName used consistently with the bindings    yes
``tool_use_id``          a toolResult block answers the id the replay sent for the     yes
                         recorded one (ids are rebound, never compared literally)
``text``                 textInput of USER/ASSISTANT (interactive or history) blocks   no
``system_prompt``        textInput of SYSTEM blocks                                    no
``tool_result_content``  toolResult content, compared as JSON                          no
``inference``            sessionStart inferenceConfiguration                          no
``endpointing``          sessionStart endpointing sensitivity (either form)            no
``tools``                promptStart tool specs (name, description, schema as JSON)    no
                         and toolChoice
``voice``                promptStart voiceId                                           no
``audio_format``         sample rates (promptStart output, contentStart AUDIO input)   no
``exact``                the whole event, after rebinding names and ids                no
=======================  ============================================================  =========

``match_on`` lists names (or callables) and *replaces* the default list, as in VCR.py; the name
``"default"`` stands for :data:`DEFAULT_MATCH_ON`, so ``("default", "text")`` adds one matcher.
``register_matcher(name, fn)`` makes a custom matcher usable by name (also from the CLI).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from novasonic.events import (
    ContentStart,
    InputEvent,
    PromptStart,
    SessionStart,
    TextInput,
    ToolResult,
)

from .bindings import Bindings
from .describe import shorten

__all__ = [
    "Matcher",
    "MatchContext",
    "MatcherFailure",
    "DEFAULT_MATCH_ON",
    "MATCHERS",
    "register_matcher",
    "resolve_matchers",
    "run_matchers",
    "event_type",
    "model",
    "content_kind",
    "names",
    "tool_use_id",
    "text",
    "system_prompt",
    "tool_result_content",
    "inference",
    "endpointing",
    "tools",
    "voice",
    "audio_format",
    "exact",
]

#: ``(received, recorded, ctx) -> None`` (raise ``AssertionError`` on a difference) or ``bool``.
Matcher: TypeAlias = Callable[[InputEvent, InputEvent, "MatchContext"], "bool | None"]


@dataclass(slots=True)
class MatchContext:
    """What a matcher may look at besides the two events."""

    bindings: Bindings
    #: The model the client opened the stream for, and the one the recording used.
    model_id: str | None = None
    recorded_model_id: str | None = None
    #: contentName → its contentStart, for the client's blocks and the recording's.
    client_blocks: Mapping[str, ContentStart] = field(default_factory=dict)
    recorded_blocks: Mapping[str, ContentStart] = field(default_factory=dict)

    def client_block(self, content_name: str) -> ContentStart | None:
        return self.client_blocks.get(content_name)

    def recorded_block(self, content_name: str) -> ContentStart | None:
        return self.recorded_blocks.get(content_name)


@dataclass(frozen=True, slots=True)
class MatcherFailure:
    matcher: str
    message: str

    def __str__(self) -> str:
        return f"{self.matcher}: {self.message}"


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _differ(what: str, got: Any, want: Any) -> None:
    if got != want:
        raise AssertionError(f"{what} {_fmt(got)}, recorded {_fmt(want)}")


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return shorten(value, 60)
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)[:200]


# --- the built-in matchers ---------------------------------------------------------------------------


def event_type(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """Same event name (``contentStart`` vs ``textInput`` …)."""
    _differ("event", received.EVENT_NAME, recorded.EVENT_NAME)


def model(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """The client opened the stream for the recording's model (checked at sessionStart)."""
    if isinstance(received, SessionStart) and ctx.recorded_model_id and ctx.model_id:
        _differ("model", ctx.model_id, ctx.recorded_model_id)


def content_kind(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """contentStart: the block's type, role and ``interactive`` flag."""
    if isinstance(received, ContentStart) and isinstance(recorded, ContentStart):
        problems = []
        for what, got, want in (("type", _s(received.type), _s(recorded.type)),
                                ("role", _s(received.role), _s(recorded.role)),
                                ("interactive", received.interactive, recorded.interactive)):
            if got != want:
                problems.append(f"{what} {_fmt(got)}, recorded {_fmt(want)}")
        if problems:
            raise AssertionError("; ".join(problems))


def names(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """promptName/contentName: the client keeps using the names bound to the recorded ones.

    ``promptStart`` and ``contentStart`` introduce (bind) a name; every later event must use the
    bound name: a textInput for another block than the recorded one, or a contentEnd closing the
    wrong block, fails here."""
    b = ctx.bindings
    rp, cp = getattr(recorded, "prompt_name", None), getattr(received, "prompt_name", None)
    if isinstance(rp, str) and isinstance(cp, str) and not isinstance(received, PromptStart):
        bound, back = b.client_prompt(rp), b.recorded_prompt(cp)
        if (bound is not None and bound != cp) or (bound is None and back is not None and back != rp):
            raise AssertionError(f"promptName {cp!r} (standing for the recorded {back!r}), but the recording "
                                 f"has this event in prompt {rp!r}" + (f", bound to {bound!r}" if bound else ""))
    rc, cc = getattr(recorded, "content_name", None), getattr(received, "content_name", None)
    if isinstance(rc, str) and isinstance(cc, str) and not isinstance(received, ContentStart):
        bound, back = b.client_content(rc), b.recorded_content(cc)
        if (bound is not None and bound != cc) or (bound is None and back is not None and back != rc):
            block = ctx.client_block(cc)
            what = f" (a {_s(block.type)}/{_s(block.role)} block)" if block is not None else ""
            where = f", which stands for the recorded {back!r}" if back else ""
            rblock = ctx.recorded_block(rc)
            rwhat = f" (a {_s(rblock.type)}/{_s(rblock.role)} block)" if rblock is not None else ""
            raise AssertionError(
                f"contentName {cc!r}{what}{where}; the recording has this event in block {rc!r}{rwhat}"
                + (f", bound to {bound!r}" if bound else "")
            )


def tool_use_id(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """A toolResult block (contentStart TOOL) answers the toolUseId the replay sent for the
    recorded one."""
    if not (isinstance(received, ContentStart) and isinstance(recorded, ContentStart)):
        return
    rcfg, ccfg = recorded.tool_result_input_configuration, received.tool_result_input_configuration
    if rcfg is None or ccfg is None:
        return  # not both TOOL blocks: content_kind tells
    want = ctx.bindings.emitted_id(rcfg.tool_use_id)
    got = ccfg.tool_use_id
    if want is None:
        raise AssertionError(f"toolUseId {got!r}: the recording answers {rcfg.tool_use_id!r} here, "
                             "which the replay has not sent yet")
    if got != want:
        known = ctx.bindings.recorded_id(got)
        why = (f"it is the replay's id for the recorded {known!r}" if known is not None
               else "the replay never sent that id")
        raise AssertionError(f"toolUseId {got!r} ({why}); expected {want!r} (the recorded {rcfg.tool_use_id!r})")


def _block_role(ctx: MatchContext, received: InputEvent, recorded: InputEvent) -> str | None:
    rb = ctx.recorded_block(getattr(recorded, "content_name", "")) or ctx.client_block(
        getattr(received, "content_name", ""))
    return _s(rb.role) if rb is not None else None


def text(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """textInput of USER/ASSISTANT blocks (interactive text, chat history): same text."""
    if isinstance(received, TextInput) and isinstance(recorded, TextInput):
        if _block_role(ctx, received, recorded) != "SYSTEM":
            _differ("text", received.content, recorded.content)


def system_prompt(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """textInput of SYSTEM blocks: same system prompt."""
    if isinstance(received, TextInput) and isinstance(recorded, TextInput):
        if _block_role(ctx, received, recorded) == "SYSTEM":
            _differ("system prompt", received.content, recorded.content)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def tool_result_content(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """toolResult content, compared as JSON (key order and spacing do not matter)."""
    if isinstance(received, ToolResult) and isinstance(recorded, ToolResult):
        _differ("tool result", _json_or_text(received.content), _json_or_text(recorded.content))


def inference(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """sessionStart inferenceConfiguration (maxTokens, topP, temperature)."""
    if isinstance(received, SessionStart) and isinstance(recorded, SessionStart):
        def cfg(e: SessionStart) -> Any:
            return e.inference_configuration.to_dict() if e.inference_configuration else None
        _differ("inferenceConfiguration", cfg(received), cfg(recorded))


def endpointing(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """sessionStart endpointing sensitivity (nested or flat form)."""
    if isinstance(received, SessionStart) and isinstance(recorded, SessionStart):
        def sens(e: SessionStart) -> str | None:
            if e.turn_detection_configuration is not None:
                return _s(e.turn_detection_configuration.endpointing_sensitivity)
            return _s(e.endpointing_sensitivity) or None
        _differ("endpointing sensitivity", sens(received), sens(recorded))


def _tools(e: PromptStart) -> Any:
    tc = e.tool_configuration
    if tc is None:
        return None
    specs = [{"name": t.tool_spec.name, "description": t.tool_spec.description,
              "schema": _json_or_text(t.tool_spec.input_schema.json_schema)} for t in tc.tools]
    return {"tools": specs, "toolChoice": tc.tool_choice.to_dict() if tc.tool_choice else None}


def tools(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """promptStart tool specs (name, description, JSON schema) and toolChoice."""
    if isinstance(received, PromptStart) and isinstance(recorded, PromptStart):
        _differ("toolConfiguration", _tools(received), _tools(recorded))


def voice(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """promptStart voiceId."""
    if isinstance(received, PromptStart) and isinstance(recorded, PromptStart):
        _differ("voiceId", received.audio_output_configuration.voice_id, recorded.audio_output_configuration.voice_id)


def audio_format(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """Sample rates: promptStart output audio, contentStart AUDIO input."""
    if isinstance(received, PromptStart) and isinstance(recorded, PromptStart):
        _differ("output sampleRateHertz", int(received.audio_output_configuration.sample_rate_hertz),
                int(recorded.audio_output_configuration.sample_rate_hertz))
    if isinstance(received, ContentStart) and isinstance(recorded, ContentStart):
        ra, ca = recorded.audio_input_configuration, received.audio_input_configuration
        if ra is not None and ca is not None:
            _differ("input sampleRateHertz", int(ca.sample_rate_hertz), int(ra.sample_rate_hertz))


def exact(received: InputEvent, recorded: InputEvent, ctx: MatchContext) -> None:
    """The whole event, after mapping the client's names and the tool ids back to the recorded
    ones (the name a promptStart/contentStart introduces counts as the recorded one)."""
    got: dict[str, Any] = json.loads(json.dumps(received.to_dict()))
    want: dict[str, Any] = json.loads(json.dumps(recorded.to_dict()))
    b = ctx.bindings
    introduced = "promptName" if isinstance(received, PromptStart) else (
        "contentName" if isinstance(received, ContentStart) else None)
    for key, back in (("promptName", b.recorded_prompt), ("contentName", b.recorded_content)):
        value = got.get(key)
        if not isinstance(value, str):
            continue
        mapped = None if key == introduced else back(value)
        if mapped is not None:
            got[key] = mapped
        elif key == introduced and key in want:
            got[key] = want[key]
    cfg = got.get("toolResultInputConfiguration")
    if isinstance(cfg, dict) and isinstance(cfg.get("toolUseId"), str):
        cfg["toolUseId"] = b.recorded_id(cfg["toolUseId"]) or cfg["toolUseId"]
    if got != want:
        diffs = [k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
        raise AssertionError("differs in " + "; ".join(
            f"{k}: {_fmt(got.get(k))}, recorded {_fmt(want.get(k))}" for k in diffs))


# --- registry ----------------------------------------------------------------------------------------

#: Every matcher usable by name.
MATCHERS: dict[str, Matcher] = {
    "event_type": event_type,
    "model": model,
    "content_kind": content_kind,
    "names": names,
    "tool_use_id": tool_use_id,
    "text": text,
    "system_prompt": system_prompt,
    "tool_result_content": tool_result_content,
    "inference": inference,
    "endpointing": endpointing,
    "tools": tools,
    "voice": voice,
    "audio_format": audio_format,
    "exact": exact,
}

#: Lenient defaults: what determines the service's answer (interfaces.md).
DEFAULT_MATCH_ON: tuple[str, ...] = ("event_type", "model", "content_kind", "names", "tool_use_id")


def register_matcher(name: str, fn: Matcher, *, replace: bool = False) -> None:
    """Make ``fn`` usable as ``match_on=(..., name)`` and ``--match-on name``."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"bad matcher name {name!r}: use letters, digits, '_' or '-'")
    if name == "default":
        raise ValueError("'default' is reserved (it stands for DEFAULT_MATCH_ON)")
    if name in MATCHERS and not replace:
        raise ValueError(f"a matcher named {name!r} exists; pass replace=True to replace it")
    if not callable(fn):
        raise TypeError(f"matcher {name!r} is not callable")
    MATCHERS[name] = fn


def resolve_matchers(match_on: Iterable[str | Matcher] | str | None) -> tuple[tuple[str, Matcher], ...]:
    """``match_on`` → ``((name, fn), ...)``, ``event_type`` first, no duplicates.

    ``None`` = :data:`DEFAULT_MATCH_ON`; a string may hold comma-separated names (the CLI form);
    ``"default"`` expands to the defaults; a callable is used as is (named by ``__name__``)."""
    if match_on is None:
        items: list[str | Matcher] = list(DEFAULT_MATCH_ON)
    elif isinstance(match_on, str):
        items = [p.strip() for p in match_on.split(",") if p.strip()]
    else:
        items = []
        for m in match_on:
            if isinstance(m, str):
                items.extend(p.strip() for p in m.split(",") if p.strip())
            else:
                items.append(m)
    out: dict[str, Matcher] = {"event_type": event_type}
    for m in items:
        if isinstance(m, str):
            if m == "default":
                for d in DEFAULT_MATCH_ON:
                    out.setdefault(d, MATCHERS[d])
                continue
            fn = MATCHERS.get(m)
            if fn is None:
                raise ValueError(f"unknown matcher {m!r}; known: {', '.join(['default', *MATCHERS])}")
            out.setdefault(m, fn)
        elif callable(m):
            out.setdefault(getattr(m, "__name__", repr(m)), m)
        else:
            raise TypeError(f"match_on items must be matcher names or callables, got {type(m).__name__}")
    return tuple(out.items())


def run_matchers(matchers: Sequence[tuple[str, Matcher]], received: InputEvent, recorded: InputEvent,
                 ctx: MatchContext, *, all_: bool = False) -> list[MatcherFailure]:
    """The failures of ``matchers`` (``event_type`` first; once it fails, the others are not run
    unless ``all_``). A matcher that raises anything but ``AssertionError`` is a bug in it: it is
    reported as a failure naming the exception, so a broken custom matcher cannot pass silently."""
    failures: list[MatcherFailure] = []
    for name, fn in matchers:
        try:
            ok = fn(received, recorded, ctx)
        except AssertionError as exc:
            failures.append(MatcherFailure(name, str(exc) or "differs"))
        except Exception as exc:  # noqa: BLE001 - reported, see the docstring
            failures.append(MatcherFailure(name, f"the matcher raised {exc!r}"))
        else:
            if ok is False:
                failures.append(MatcherFailure(name, "differs"))
        if failures and name == "event_type" and not all_:
            break
    return failures
