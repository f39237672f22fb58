"""The scenarios of the shipped cassette library: what each conversation is, and how it is run.

Each scenario runs for real (``Recorder``: the fake server with the scripted responder on a
driven clock, the stock SDK client sending what a LiveKit agent sends, in lock-step) and returns
the server's journals; ``generate`` turns them into the cassette. The responder's output shapes
come from the spec and the captures (protocol.md §2.2 A–E; ``../shared/captures``); each
scenario names its sources in ``grounded_in`` (written into the cassette's ``meta``).

Choices common to all scenarios (noted here because the issue is silent on them):

- **Nova 2 audio chunks** are 106.75 ms (3416 bytes at 16 kHz in OME-PRE; 5124 bytes at the
  24 kHz LiveKit asks for); **Nova Sonic 1 chunks** 40 ms (1920 bytes at 24 kHz, SQ).
- The user's speech is synthetic (``fakeserver.audio.synth_speech``): nobody's voice. The
  cassettes keep only its speech/silence segments (the default audio policy); assistant audio
  is elided to its duration and chunk sizes.
- The model answers as soon as the end-point is detected (480 ms of silence at MEDIUM, as in
  OME-N1); the real service adds some latency, which the spec does not pin down.
- Tool functions answer 480 ms (driven time) after the TOOL ``contentEnd``; the microphone keeps
  streaming silence meanwhile, as an agent's does.
- Two-stream scenarios resume with the chat history (USER first, alternating), as LiveKit does
  after a recycle or a restart; the script's turns continue across the streams.
- Retryable errors mid-answer are fault injections (``fakeserver.faults``): the exception
  replaces the answer's 4th ``audioOutput`` on stream 0. The fake journals an exception's member
  and message only, so ``modelStreamErrorException``'s ``originalStatusCode``/``originalMessage``
  are not in that cassette. Limits (8 minutes, 55 s without input, 175 s of silence) are the
  fake server's own, at their spec values (``novasonic.rules.Limits``).
- The barge-in cassettes are named after ``ScriptedConfig.barge_in_variant``: ``spec`` (the
  documented shape), ``pipecat`` (AUDIO END_TURN before TEXT INTERRUPTED) and ``silent`` (the
  Nova 2 field test: no marker, no INTERRUPTED).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fakeserver.faults import DEFAULT_EXCEPTION_TEXTS, Action, Fault, Trigger
from fakeserver.responders import Script, ScriptedConfig, ToolCallScript, TurnScript
from novasonic.models import NOVA_2_SONIC, NOVA_SONIC_1
from novasonic.rules import Limits, ToolCallRequested, texts

from .lockstep import LockstepConversation
from .recorder import GET_WEATHER, AgentProfile, Recorded, Recorder, history_from_turns

__all__ = ["Scenario", "SCENARIOS", "scenario_names", "RESTART_ERRORS", "BARGE_IN_VARIANTS"]

FRAME_MS = 32.0
#: Nova 2: ~107 ms chunks (OME-PRE: 3416 B at 16 kHz). Playback follows input audio only
#: (``audio_stall_s=None``): a loaded machine cannot move a chunk release.
NOVA2 = ScriptedConfig(chunk_ms=106.75, audio_stall_s=None)
#: Nova Sonic 1: 40 ms chunks (SQ: 1920 B at 24 kHz).
NOVA1 = ScriptedConfig(chunk_ms=40.0, audio_stall_s=None)
TOOL_LATENCY_MS = 480.0
#: The microphone keeps streaming this long after the answer before the agent closes.
TAIL_MS = 640.0

NOVA2_AGENT = AgentProfile(NOVA_2_SONIC)
NOVA2_TOOL_AGENT = AgentProfile(NOVA_2_SONIC, tools=(GET_WEATHER,))
NOVA1_AGENT = AgentProfile(NOVA_SONIC_1)

Recording = Callable[["Scenario"], Awaitable[Recorded]]


@dataclass(frozen=True)
class Scenario:
    """One shipped cassette: ``name`` (file stem), what it shows, and how it is recorded."""

    name: str
    model_id: str
    title: str
    shows: str
    grounded_in: tuple[str, ...]
    seed: int
    record: Recording
    voice: str = "tiffany"
    extra_meta: dict[str, Any] = field(default_factory=dict)
    #: Minutes of streamed audio to record (the limit scenarios): scheduled first.
    slow: bool = False

    def meta(self) -> dict[str, Any]:
        """The cassette header's ``meta``: the scenario, what it demonstrates and where that
        comes from (the full description is in ``cassettes/README.md``, kept out of the file to
        keep it small)."""
        return {
            "scenario": self.name,
            "demonstrates": self.title,
            "grounded_in": list(self.grounded_in),
            "generator": "python -m tools.cassette_gen",
            "seed": self.seed,
            **self.extra_meta,
        }


SCENARIOS: dict[str, Scenario] = {}


def _register(s: Scenario) -> Scenario:
    if s.name in SCENARIOS:
        raise ValueError(f"duplicate scenario {s.name!r}")
    SCENARIOS[s.name] = s
    return s


def scenario_names() -> list[str]:
    return list(SCENARIOS)


# --- small steps -------------------------------------------------------------------------------------


async def until_completion_end(conv: LockstepConversation, n: int = 1, *, max_s: float = 30.0) -> None:
    await conv.silence_until(lambda: conv.count("completionEnd") >= n, max_frames=_frames(max_s),
                             what=f"completionEnd #{n}")


async def until_stream_ended_by_server(conv: LockstepConversation, *, max_s: float) -> None:
    await conv.silence_until(lambda: conv.server_closed or conv.ended, max_frames=_frames(max_s),
                             what="the server to end the stream")
    await conv.wait_server_end()


async def stream_until(conv: LockstepConversation, t: float) -> None:
    """Stream silence until the driven clock reaches ``t`` (never past it)."""
    frames = int(math.floor((t - conv.clock.now()) * 1000.0 / FRAME_MS + 1e-6))
    if frames > 0:
        await conv.silence(frames * FRAME_MS)


def _frames(seconds: float) -> int:
    return int(seconds * 1000.0 / FRAME_MS) + 1


def weather(call: ToolCallRequested) -> dict[str, Any]:
    """The agent's get_weather function (fixed answers, so the cassettes are repeatable)."""
    table = {"Paris": (21, "sunny"), "Rome": (26, "clear"), "Lisbon": (24, "sunny")}
    location = str(call.arguments.get("location", "")) if isinstance(call.arguments, dict) else ""
    temperature, conditions = table.get(location, (18, "cloudy"))
    return {"location": location, "temperature_c": temperature, "conditions": conditions}


# --- 1. Nova 2 audio turn ---------------------------------------------------------------------------


async def _audio_turn(s: Scenario) -> Recorded:
    script = Script([TurnScript("i usually go to gym after work.",
                                ["That’s a great routine.", "What do you usually work on at the gym?"])])
    async with Recorder(s.seed, script, NOVA2) as rec:
        conv = rec.conversation(NOVA2_AGENT)
        await conv.open()
        await conv.speak(1920, seed=1)  # OME-N1: speech 0–1920 ms
        await until_completion_end(conv)
        await conv.silence(TAIL_MS)
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_audio_turn", NOVA_2_SONIC,
    "Nova 2: one spoken user turn, spoken answer",
    "Sequence A: usage for the system prompt, userSpeechStart, completionStart, userSpeechEnd "
    "(speech 0–1920 ms, end-point detected at 2400 ms), the USER FINAL transcript, two sentences "
    "each as ASSISTANT SPECULATIVE text then its AUDIO block (PARTIAL_TURN, then END_TURN), the "
    "FINAL texts after the audio, completionEnd END_TURN; then the documented shutdown.",
    ("protocol.md §2.2 A", "captures/nova2-asr-turn.events.json", "OME-N1 (transcript, offsets)",
     "OME-MT (FINAL after audio)", "OME-PRE (3416 B chunks)"),
    101, _audio_turn,
))


# --- 2. Nova 2 interactive text turn ----------------------------------------------------------------


async def _text_turn(s: Scenario) -> Recorded:
    script = Script([TurnScript("", ["Here’s one: Captain Whiskers.", "It suits a curious cat."])])
    async with Recorder(s.seed, script, NOVA2) as rec:
        conv = rec.conversation(NOVA2_AGENT)
        await conv.open()
        await conv.silence(960)  # the microphone streams silence: the AUDIO block stays open
        await conv.interactive_text("Suggest a name for my new cat.")
        await until_completion_end(conv)
        await conv.silence(TAIL_MS)
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_text_turn", NOVA_2_SONIC,
    "Nova 2: interactive (typed) USER text turn while the microphone streams silence",
    "Sequence C: an interactive USER TEXT block sent between audio frames (no audio inside it); "
    "the answer starts with an empty USER FINAL transcript, no userSpeechStart/End, then "
    "SPECULATIVE text + AUDIO per sentence, FINAL texts, completionEnd.",
    ("protocol.md §1.7, §2.2 C", "D-XMOD", "pipecat PR #4042 (empty USER transcript)"),
    102, _text_turn,
))


# --- 3. single tool call ----------------------------------------------------------------------------


async def _tool_call(s: Scenario) -> Recorded:
    script = Script([TurnScript(
        "what's the weather like in paris right now?",
        tool_call=ToolCallScript("get_weather", {"location": "Paris"}, filler=["Let me check the weather in Paris."]),
        follow_up=lambda r: [f"It’s {r['conditions']} and {r['temperature_c']} degrees in Paris right now."],
    )])
    async with Recorder(s.seed, script, NOVA2) as rec:
        conv = rec.conversation(NOVA2_TOOL_AGENT, answer_tool=weather, tool_latency_ms=TOOL_LATENCY_MS)
        await conv.open()
        await conv.silence(320)
        await conv.speak(2200, seed=3)
        await until_completion_end(conv)
        await conv.silence(TAIL_MS)
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_tool_call", NOVA_2_SONIC,
    "Nova 2: one get_weather tool call, its result, and the spoken follow-up",
    "Sequence D: after the USER transcript a TOOL block (toolUse get_weather, arguments as a JSON "
    "string, contentEnd TOOL_USE); Nova 2 keeps talking while the tool runs (a filler sentence); "
    "the client sends the result as a TOOL content block 480 ms later; the model then speaks the "
    "answer built from the result, and ends the completion.",
    ("protocol.md §1.8, §2.2 D", "captures/nova2-tool-turn.events.json", "D-TOOL"),
    103, _tool_call,
))


# --- 4. chained tool calls ---------------------------------------------------------------------------


async def _chained_tools(s: Scenario) -> Recorded:
    script = Script([TurnScript(
        "is it warmer in paris or in rome today?",
        tool_call=ToolCallScript(
            "get_weather", {"location": "Paris"}, filler=["Let me check Paris first."],
            then_tool_call=ToolCallScript("get_weather", {"location": "Rome"}, filler=["And now Rome."]),
        ),
        follow_up=["Rome is warmer today: twenty-six degrees, against twenty-one in Paris."],
    )])
    async with Recorder(s.seed, script, NOVA2) as rec:
        conv = rec.conversation(NOVA2_TOOL_AGENT, answer_tool=weather, tool_latency_ms=TOOL_LATENCY_MS)
        await conv.open()
        await conv.silence(320)
        await conv.speak(2000, seed=4)
        await until_completion_end(conv)
        await conv.silence(TAIL_MS)
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_chained_tools", NOVA_2_SONIC,
    "Nova 2: two chained get_weather calls with speech in between",
    "toolUse get_weather(Paris) → SPECULATIVE speech while it runs → its result → toolUse "
    "get_weather(Rome) → speech → its result → the answer; the client sends only silence after "
    "the question, so each result must be delivered without new user audio (livekit #4887).",
    ("protocol.md §2.2 D", "captures/nova2-tool-turn.events.json", "client-behaviours.md (b) #4"),
    104, _chained_tools,
))


# --- 5. barge-in ---------------------------------------------------------------------------------------

STORY = ["Once upon a time, a lighthouse keeper lived alone on a rocky island far out at sea.",
         "Every night he climbed the tower and lit the great lamp for the passing ships."]

BARGE_IN_VARIANTS: dict[str, str] = {
    "spec": "the documented shape (§2.2 E, docs, AWS samples): AUDIO contentEnd PARTIAL_TURN, then an ASSISTANT "
            "FINAL text block with the words spoken so far and the marker { \"interrupted\" : true }, ending "
            "INTERRUPTED",
    "pipecat": "the order pipecat reported (commits 3a865d56d, 757667fd4): AUDIO contentEnd END_TURN *before* the "
               "FINAL TEXT contentEnd INTERRUPTED (with the marker)",
    "silent": "the Nova 2 field test (2026-07-14): only userSpeechStart and the AUDIO contentEnd PARTIAL_TURN; no "
              "marker, no INTERRUPTED anywhere",
}


def _barge_in(variant: str) -> Recording:
    async def record(s: Scenario) -> Recorded:
        script = Script([
            TurnScript("tell me a story about a lighthouse.", STORY),
            TurnScript("okay, stop. that's enough.", ["Sure, I’ll stop there."]),
        ])
        async with Recorder(s.seed, script, replace(NOVA2, barge_in_variant=variant)) as rec:
            conv = rec.conversation(NOVA2_AGENT)
            await conv.open()
            await conv.silence(320)
            await conv.speak(1800, seed=5)
            # the story plays (about 0.8 s of it) ...
            await conv.silence_until(lambda: conv.count("audioOutput") >= 10, max_frames=_frames(10), what="story audio")
            # ... and the user talks over it
            await conv.speak(1100, seed=6)
            await until_completion_end(conv)
            await conv.silence(TAIL_MS)
            await conv.finish()
            return rec.recorded()
    return record


for _i, (_variant, _what) in enumerate(BARGE_IN_VARIANTS.items()):
    _register(Scenario(
        f"nova2_barge_in_{_variant}", NOVA_2_SONIC,
        f"Nova 2: the user interrupts the spoken answer ({_variant} variant)",
        f"The user starts talking while the story's first AUDIO block plays: userSpeechStart, then {_what}; "
        "the rest of the story is dropped and the interrupting utterance is answered as the next turn.",
        ("protocol.md §2.2 E", "client-behaviours.md (b) #22, (d) 5", "D-BARGE"),
        105 + _i, _barge_in(_variant), extra_meta={"barge_in_variant": _variant},
    ))


# --- 6. history resume after a recycle ----------------------------------------------------------------


async def _history_resume(s: Scenario) -> Recorded:
    script = Script([
        TurnScript("what's a good stretch for my lower back?",
                   ["Try a gentle knee-to-chest stretch.", "Hold it for about thirty seconds."]),
        TurnScript("how many times should i do it?", ["Three or four times on each side is plenty."]),
    ])
    async with Recorder(s.seed, script, NOVA2) as rec:
        first = rec.conversation(NOVA2_AGENT)
        await first.open()
        await first.silence(320)
        await first.speak(2000, seed=7)
        await until_completion_end(first)
        await first.silence(1000)  # LiveKit recycles after END_TURN plus 1 s without assistant audio
        await first.finish()
        second = rec.conversation(NOVA2_AGENT, history=history_from_turns(first.tracker.turns))
        await second.open()
        await second.silence(320)
        await second.speak(1600, seed=8)
        await until_completion_end(second)
        await second.silence(TAIL_MS)
        await second.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_history_resume", NOVA_2_SONIC,
    "Nova 2: a session recycled onto a new stream, resumed with the chat history (two streams)",
    "Stream 0: one turn, then the client closes the stream gracefully (a proactive recycle; LiveKit "
    "rotates at 6 minutes, done here after the first turn to keep the cassette short). Stream 1: "
    "the same start block plus the chat history (USER, ASSISTANT: non-interactive TEXT blocks "
    "after SYSTEM, before any audio), then the user's follow-up question and its answer.",
    ("protocol.md §1.6", "D-HIST", "client-behaviours.md (a) rotation, (b) #12"),
    108, _history_resume,
))


# --- 7. restart after a retryable error mid-answer -----------------------------------------------------

#: name suffix → (in-stream member, message, short label). The messages: the fake's defaults for
#: the exceptions without a Nova-specific text (faults.DEFAULT_EXCEPTION_TEXTS), and the two
#: ValidationException texts LiveKit restarts on (RECOVERABLE_VALIDATION_ERROR_MESSAGES, #6042).
RESTART_ERRORS: dict[str, tuple[str, str, str]] = {
    "throttling": ("throttlingException", DEFAULT_EXCEPTION_TEXTS["throttlingException"], "throttlingException"),
    "model_timeout": ("modelTimeoutException", DEFAULT_EXCEPTION_TEXTS["modelTimeoutException"],
                      "modelTimeoutException"),
    "model_stream_error": ("modelStreamErrorException", DEFAULT_EXCEPTION_TEXTS["modelStreamErrorException"],
                           "modelStreamErrorException"),
    "internal_server": ("internalServerException", DEFAULT_EXCEPTION_TEXTS["internalServerException"],
                        "internalServerException"),
    "rst_531": ("validationException", texts.RST_531, "validationException 531 RST_STREAM"),
    "system_instability": ("validationException", texts.SYSTEM_INSTABILITY,
                           "validationException \"System instability detected\""),
}
#: The exception replaces the 4th audioOutput: the first sentence's text and 3 chunks went out.
RESTART_AT_CHUNK = 4


def _restart(member: str, message: str) -> Recording:
    async def record(s: Scenario) -> Recorded:
        script = Script([
            TurnScript("what should i pack for a weekend in the mountains?",
                       ["Pack warm layers, a rain jacket and good walking shoes.",
                        "Nights get cold up there, so bring a hat too."]),
            TurnScript("sorry, you cut out. what was that?",
                       ["No problem: warm layers, a rain jacket, good shoes, and a hat for the cold nights."]),
        ])
        fault = Fault(Trigger("server", "audioOutput", RESTART_AT_CHUNK), Action.exception(member, message),
                      streams=frozenset({0}))
        async with Recorder(s.seed, script, NOVA2, faults=(fault,)) as rec:
            first = rec.conversation(NOVA2_AGENT)
            await first.open()
            await first.silence(320)
            await first.speak(2200, seed=9)
            await until_stream_ended_by_server(first, max_s=20)
            await first.finish()
            # LiveKit restarts at once (first attempt without delay) with the chat context.
            second = rec.conversation(NOVA2_AGENT, history=history_from_turns(first.tracker.turns))
            await second.open()
            await second.silence(320)
            await second.speak(1500, seed=10)
            await until_completion_end(second)
            await second.silence(TAIL_MS)
            await second.finish()
            return rec.recorded()
    return record


for _i, (_suffix, (_member, _message, _label)) in enumerate(RESTART_ERRORS.items()):
    _register(Scenario(
        f"nova2_restart_{_suffix}", NOVA_2_SONIC,
        f"Nova 2: {_label} mid-answer, then a restart with history (two streams)",
        f"Stream 0: the user asks, the answer starts (SPECULATIVE text, {RESTART_AT_CHUNK - 1} audio chunks), "
        f"then the service ends the stream with {_member} \"{_message}\". Stream 1: the client restarts with "
        "the chat history (the question and the partial answer), the user asks again and gets the answer.",
        ("protocol.md §3.2, §4.5", "client-behaviours.md (a.2), (b) #9, #10"),
        110 + _i, _restart(_member, _message),
        extra_meta={"error": {"member": _member, "message": _message}},
    ))


# --- 8. the 8-minute limit ---------------------------------------------------------------------------------

AGE_TURNS = [
    ("let's plan a trip to japan in the spring.", ["Spring is a lovely time for Japan.", "Where would you like to start?"]),
    ("let's start in tokyo for three days.", ["Three days in Tokyo works well.", "Shall we add Kyoto after that?"]),
    ("yes, add two days in kyoto.", ["Great, two days in Kyoto.", "You could take the bullet train there."]),
    ("how long is the train ride?", ["About two hours and fifteen minutes."]),
]
#: Driven-clock second at which each user turn starts: one every two minutes, so no silence run
#: reaches the 175 s silence limit before the stream's 8 minutes are up.
AGE_TURN_AT_S = [1.0, 120.0, 240.0, 360.0]


async def _stream_age_limit(s: Scenario) -> Recorded:
    resume = ("are we still planning the trip?", ["Yes: three days in Tokyo, then two in Kyoto by bullet train."])
    script = Script([TurnScript(u, r) for u, r in AGE_TURNS] + [TurnScript(*resume)])
    limits = Limits()
    async with Recorder(s.seed, script, NOVA2, limits=limits) as rec:
        first = rec.conversation(NOVA2_AGENT)
        await first.open()
        for i, at in enumerate(AGE_TURN_AT_S):
            await stream_until(first, at)
            await first.speak(1800, seed=20 + i)
            await until_completion_end(first, i + 1)
        # the microphone keeps streaming until the service's age limit ends the stream
        await stream_until(first, limits.max_stream_age_s)
        await first.wait_server_end()
        await first.finish()
        second = rec.conversation(NOVA2_AGENT, history=history_from_turns(first.tracker.turns))
        await second.open()
        await second.silence(320)
        await second.speak(1600, seed=30)
        await until_completion_end(second)
        await second.silence(TAIL_MS)
        await second.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_stream_age_limit", NOVA_2_SONIC,
    "Nova 2: the 8-minute stream limit, then a resume with history (two streams)",
    "Stream 0: a microphone streaming for 8 minutes with a user turn every two minutes; at 480 s "
    "of stream age the service ends it with modelTimeoutException \"Model has timed out in "
    "processing the request.\" (no answer in progress). Stream 1: the client reconnects with the "
    "four turns as chat history and the conversation goes on.",
    ("protocol.md §3.3 (8 minutes)", "client-behaviours.md (b) #13, #30", "SDK client.py docstring"),
    120, _stream_age_limit, slow=True,
))


# --- 9. idle timeouts ---------------------------------------------------------------------------------


async def _idle_timeout(s: Scenario) -> Recorded:
    limits = Limits()
    async with Recorder(s.seed, Script([]), NOVA2, limits=limits) as rec:
        conv = rec.conversation(NOVA2_AGENT)
        await conv.open()
        # the AUDIO block is open but the microphone sends nothing (a muted or unpublished track)
        await conv.pass_time(limits.idle_input_timeout_s)
        await conv.wait_server_end()
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_idle_timeout", NOVA_2_SONIC,
    "Nova 2: no input events for 55 s → \"Timed out waiting for input events\"",
    "The client sends the start block and opens the AUDIO block, then nothing (its microphone "
    "track publishes no frames). 55 s after the last input event the service ends the stream "
    "with validationException \"Timed out waiting for input events\" (not retryable for LiveKit).",
    ("protocol.md §3.2, §3.3 (idle input)", "client-behaviours.md (b) #17"),
    121, _idle_timeout,
))


async def _silence_timeout(s: Scenario) -> Recorded:
    script = Script([
        TurnScript("can you remind me to water the plants?", ["Sure, I’ll remind you to water the plants."]),
        TurnScript("are you still there?", ["Yes, I’m here. What can I do for you?"]),
    ])
    limits = Limits()
    async with Recorder(s.seed, script, NOVA2, limits=limits) as rec:
        first = rec.conversation(NOVA2_AGENT)
        await first.open()
        await first.silence(320)
        await first.speak(1900, seed=40)
        await until_completion_end(first)
        # then only silence: the 531 comes after 175 s of silent frames
        await until_stream_ended_by_server(first, max_s=limits.silent_audio_timeout_s + 10)
        await first.finish()
        second = rec.conversation(NOVA2_AGENT, history=history_from_turns(first.tracker.turns))
        await second.open()
        await second.silence(320)
        await second.speak(1200, seed=41)
        await until_completion_end(second)
        await second.silence(TAIL_MS)
        await second.finish()
        return rec.recorded()


_register(Scenario(
    "nova2_silence_timeout", NOVA_2_SONIC,
    "Nova 2: 175 s of streamed silence → the 531 RST_STREAM validationException, then a restart (two streams)",
    "Stream 0: one turn, then the microphone streams only silence; after 175 s of silent frames the "
    "service ends the stream with validationException \"InternalErrorCode=531::RST_STREAM closed "
    "stream. HTTP/2 error code: NO_ERROR\". Stream 1: LiveKit treats it as recoverable and restarts "
    "with the chat history; the user speaks again.",
    ("protocol.md §3.2, §3.3 (long silence)", "client-behaviours.md (a) idle/silence timeout"),
    122, _silence_timeout, slow=True,
))


# --- 10. Nova Sonic 1 ------------------------------------------------------------------------------------


NOVA1_REPLY = ["I can answer questions and chat with you.", "I can also help you plan your day.",
               "What would you like to do?"]


async def _nova1_audio_turn(s: Scenario) -> Recorded:
    script = Script([TurnScript("hey, what can you help me with?", NOVA1_REPLY)])
    async with Recorder(s.seed, script, NOVA1) as rec:
        conv = rec.conversation(NOVA1_AGENT)
        await conv.open()
        await conv.silence(320)
        await conv.speak(1800, seed=50)
        # Nova Sonic 1 sends no completionEnd before the prompt ends: wait for the FINAL texts
        await conv.silence_until(
            lambda: len(conv.ended_blocks(type="TEXT", role="ASSISTANT", stage="FINAL")) >= len(NOVA1_REPLY),
            max_frames=_frames(30), what="the FINAL texts")
        await conv.silence(TAIL_MS)
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "nova1_audio_turn", NOVA_SONIC_1,
    "Nova Sonic 1: audio-only turn, per-sentence blocks, FINAL text after all the audio",
    "Sequence B: no userSpeechStart/End (Nova 1 has none), completionStart, the USER FINAL "
    "transcript, then for each of three sentences its SPECULATIVE text and its own AUDIO block "
    "(1920-byte chunks at 24 kHz; PARTIAL_TURN, the last END_TURN), then the FINAL texts repeating "
    "the sentences after all the audio (the first END_TURN, the others PARTIAL_TURN); completionEnd "
    "only when the prompt ends. sessionStart carries the flat endpointingSensitivity LiveKit sends "
    "for v1.",
    ("protocol.md §0, §2.2 B", "SQ capture (Nova 1 browser log)"),
    130, _nova1_audio_turn,
))


# --- 11. the demo's cassette ---------------------------------------------------------------------------

DEMO_FOLLOW_UP = ["It’s sunny in Lisbon, twenty-four degrees with a light breeze.",
                  "It’s a great day for a walk along the river, and the evening should stay warm too."]


async def _agent_demo(s: Scenario) -> Recorded:
    script = Script([
        TurnScript("what's the weather in lisbon today?",
                   tool_call=ToolCallScript("get_weather", {"location": "Lisbon"}, filler=["Let me check."]),
                   follow_up=DEMO_FOLLOW_UP),
        TurnScript("thanks, that's all i needed.", ["You’re welcome. Enjoy your walk!"]),
    ])
    async with Recorder(s.seed, script, NOVA2) as rec:
        conv = rec.conversation(NOVA2_TOOL_AGENT, answer_tool=weather, tool_latency_ms=TOOL_LATENCY_MS)
        await conv.open()
        await conv.silence(320)
        await conv.speak(2000, seed=60)

        def second_sentence_playing() -> bool:
            blocks = conv.blocks
            return (len(blocks) >= 2 and blocks[-1].type == "AUDIO" and blocks[-1].audio_events >= 5
                    and blocks[-2].text == DEMO_FOLLOW_UP[1])

        await conv.silence_until(second_sentence_playing, max_frames=_frames(20), what="the follow-up's 2nd sentence")
        await conv.speak(1300, seed=61)  # the user talks over it
        await until_completion_end(conv)
        await conv.silence(TAIL_MS)
        await conv.finish()
        return rec.recorded()


_register(Scenario(
    "agent_demo", NOVA_2_SONIC,
    "The demo: a spoken question, a get_weather tool call, and a barge-in",
    "The user asks about the weather; the model calls get_weather (filler speech while it runs), "
    "gets the result and answers in two sentences; the user interrupts the second sentence "
    "(documented barge-in shape: AUDIO PARTIAL_TURN, FINAL text with the marker, INTERRUPTED) "
    "and the interruption is answered.",
    ("protocol.md §2.2 A, D, E", "captures/nova2-tool-turn.events.json"),
    140, _agent_demo,
))
