"""``cassettes/README.md``: the library's list, generated from the scenarios and the files.

Generated (not hand-written) so it cannot go stale: ``--check`` fails when it differs from what
the generator writes. Everything in it is deterministic (no creation times).
"""

from __future__ import annotations

from collections.abc import Sequence

from novasonic.cassette import Cassette

from .scenarios import Scenario

__all__ = ["render_readme"]

_INTRO = """\
# Shipped cassettes

Recorded Nova Sonic conversations for replay tests, e.g.

    async with FakeNovaSonic(cassette="cassettes/nova2_tool_call.jsonl", speed=math.inf) as fake:
        ...                                   # run your agent against fake.env / fake.info()

or `python -m fakeserver serve --cassette cassettes/agent_demo.jsonl`. Inspect one with
`nova-cassette inspect cassettes/nova2_barge_in_spec.jsonl` (or `timeline`, `diff`).

**Generated, do not edit by hand**: every file here, this README included, is written by

    python -m tools.cassette_gen --out cassettes     # (re)generate; files whose content is unchanged are not rewritten
    python -m tools.cassette_gen --check cassettes   # CI: exit 1 on any drift, with a semantic diff
    python -m tools.cassette_gen --list              # the scenarios

## How they are made

Each scenario runs for real. The stock `aws_sdk_bedrock_runtime` client (CRT transport, loopback
TLS + HTTP/2, SigV4-signed frames) sends what a LiveKit agent sends: `sessionStart` with
`inferenceConfiguration` (1024 / 0.9 / 0.7) and MEDIUM turn detection (nested on Nova 2, flat on
Nova Sonic 1), `promptStart` with voice `tiffany` at 24 kHz and, in the tool scenarios, the
`get_weather` tool spec; the SYSTEM block; on a resumed stream the chat history (USER first,
alternating); one interactive AUDIO block at 16 kHz streaming 32 ms frames the whole time
(silence between utterances); tool results as TOOL blocks; the documented shutdown. It talks
to `FakeNovaSonic` with the scripted responder, whose output sequences follow the spec and the
real captures (each cassette's `meta.grounded_in` says which); errors and limits are the fake
server's own (retryable errors are injected faults; a `note` record marks each injection). The
server's journal becomes the cassette through `cassette_from_journal` (`"source": "scripted"`).

Generation is deterministic: seeded ids and names, client and server in lock-step (every event
processed and answered before the next), and a driven clock that moves with the streamed audio
(`t` equals the audio position `a`; limits fire at exact times). Two runs give the same bytes;
only the header's `created` would differ, so a file whose content did not change keeps its own.

Audio (the default compact policy): the user's audio is synthetic speech, stored only as
speech/silence segments; the assistant's audio is elided to its duration and chunk sizes (replay
synthesises it). Sizes below are the `.jsonl` files. The budget is 25 KB per
conversation-minute: the long cassettes are far below it; a short single-turn cassette is over
it per minute because of its fixed part (header, start block, shutdown: about 3 KB per stream),
which a few seconds of conversation cannot amortise.
"""


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def _duration(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"
    return f"{seconds:.1f} s"


def _end(reason: str | None) -> str:
    return (reason or "?").removeprefix("exception:")


def render_readme(items: Sequence[tuple[Scenario, Cassette]]) -> str:
    lines = [_INTRO, "## The library", "",
             "| Cassette | Model | Streams (how each ended) | Duration | Size (KB) | KB per conv-min | What it shows |",
             "|---|---|---|---|---|---|---|"]
    for s, c in items:
        ends = " → ".join(_end(st.end_reason) for st in c)
        model = "Nova 2" if "nova-2" in s.model_id else "Nova Sonic 1"
        lines.append(
            f"| `{s.name}.jsonl` | {model} | {len(c)} ({ends}) | {_duration(c.duration_s)} | "
            f"{_kb(c.size_bytes)} | {c.bytes_per_minute() / 1024:.1f} | {s.title} |"
        )
    total = sum(c.size_bytes for _, c in items)
    minutes = sum(c.duration_s for _, c in items) / 60.0
    if minutes:
        lines += ["", f"Total: {len(items)} cassettes, {_kb(total)} KB for {minutes:.1f} conversation-minutes "
                  f"({total / 1024 / minutes:.1f} KB per conversation-minute overall)."]
    lines += ["", "## Details", ""]
    for s, c in items:
        lines += [f"### `{s.name}`", "", s.shows, ""]
        for i, st in enumerate(c):
            lines.append(f"- stream {i}: {_duration(st.duration_s)}, ended `{st.end_reason}`")
        lines += ["", f"Model `{s.model_id}`, seed {s.seed}. Grounded in: " + "; ".join(s.grounded_in) + ".", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
