"""Child program of the upstream compatibility test: the UNMODIFIED upstream LiveKit plugin
(``livekit.plugins.aws.experimental.realtime.RealtimeModel``, livekit-plugins-aws 1.8.9) runs one
tool-call turn in a real ``AgentSession`` against ``FakeNovaSonic``, and one JSON line is printed
with what happened.

How the upstream plugin is pointed at the fake
    It builds its client with ``endpoint_uri=f"https://bedrock-runtime.{region}.amazonaws.com"``
    passed explicitly to ``AsyncBedrockRuntimeConfig.resolve``; an explicit value wins over
    ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (smithy's config resolution), so the endpoint variable is
    ignored and the only lever left is the host name. This program therefore expects to run in
    a private network namespace (``unshare --user --map-root-user --net --mount``, see
    ``tests/integration/test_livekit_upstream_compat.py``) whose ``/etc/hosts`` maps
    ``bedrock-runtime.us-east-1.amazonaws.com`` to 127.0.0.1 and whose loopback is the only
    network: the fake listens on 127.0.0.1:443 there with a certificate for that name from a
    throw-away CA, trusted through ``SSL_CERT_FILE``; credentials come from ``AWS_ACCESS_KEY_ID``
    / ``AWS_SECRET_ACCESS_KEY`` (the fake's published test keys). Nothing of the plugin is
    patched; its constructor gets no argument at all (defaults: Nova 2, us-east-1).

Usage (inside the namespace)::

    python -m tests.helpers.livekit_upstream [--cassette PATH] [--timeout S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import trustme
from livekit.agents import Agent, llm

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ToolCallScript, TurnScript

from .livekit_harness import AgentHarness
from .livekit_io import speak, user_speech

HOST = "bedrock-runtime.us-east-1.amazonaws.com"

#: A tool whose JSON schema has no ``title``/``default`` keywords: the upstream plugin sends a
#: ``@function_tool``'s generated schema as is, titles included, which the fake (following the
#: reports, protocol.md §1.2) refuses with "Invalid input request".
WEATHER_SCHEMA = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


class UpstreamWeatherAgent(Agent):
    def __init__(self) -> None:
        self.calls: list[str] = []

        async def get_weather(raw_arguments: dict[str, Any]) -> dict[str, Any]:
            self.calls.append(raw_arguments["location"])
            return {"location": raw_arguments["location"], "temperature_c": 21, "sky": "sunny"}

        super().__init__(instructions="You are a weather assistant.",
                         tools=[llm.function_tool(get_weather, raw_schema=WEATHER_SCHEMA)])


def weather_script() -> Script:
    return Script([TurnScript(
        "what's the weather like in paris right now?",
        tool_call=ToolCallScript("get_weather", {"location": "Paris"}, filler=["Let me check the weather in Paris."]),
        follow_up=lambda r: [f"It's {r.get('sky')} and {r.get('temperature_c')} degrees in Paris right now."],
    )])


def make_tls(directory: str) -> tuple[str, str, str]:
    ca = trustme.CA(organization_name="upstream compatibility test CA")
    leaf = ca.issue_cert(HOST, "localhost", "127.0.0.1")
    paths = [os.path.join(directory, n) for n in ("server-cert.pem", "server-key.pem", "ca.pem")]
    leaf.cert_chain_pems[0].write_to_path(paths[0])
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(paths[0], append=True)
    leaf.private_key_pem.write_to_path(paths[1])
    ca.cert_pem.write_to_path(paths[2])
    return paths[0], paths[1], paths[2]


async def run(cassette: str | None, timeout: float) -> dict[str, Any]:
    from livekit.plugins.aws.experimental.realtime import RealtimeModel as UpstreamRealtimeModel

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, ca = make_tls(tmp)
        kw: dict[str, Any] = {"cassette": cassette} if cassette else {"script": weather_script()}
        async with FakeNovaSonic(tls=(cert, key, ca), port=443, speed=math.inf, **kw) as fake:
            # configuration only: credentials and trust through the environment
            os.environ.update({
                "AWS_ACCESS_KEY_ID": fake.access_key_id,
                "AWS_SECRET_ACCESS_KEY": fake.secret_access_key,
                "AWS_REGION": fake.region,
                "AWS_DEFAULT_REGION": fake.region,
                "SSL_CERT_FILE": ca,
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.endpoint,  # ignored by upstream 1.8.9, see above
            })
            os.environ.pop("AWS_SESSION_TOKEN", None)
            agent = UpstreamWeatherAgent()
            h = AgentHarness(fake, agent, model=UpstreamRealtimeModel(), timeout=timeout)
            async with h:
                speech = user_speech(cassette) if cassette else [(320.0, 2520.0)]
                for i, (start, end) in enumerate(speech):
                    speak(h.mic, end - start, at_ms=start, seed=i + 1)
                try:
                    await h.wait_for(lambda: len(h.assistant_messages()) >= 2 and agent.calls,
                                     what="the tool call and the spoken answer")
                except AssertionError as exc:
                    out["wait_error"] = str(exc)[:2000]
            streams = fake.journal.streams
            out.update({
                "calls": agent.calls,
                "assistant": h.assistant_texts(),
                "user": h.user_texts(),
                "tool_outputs": [o.output for o in h.tool_outputs()],
                "errors": [str(e.error) for e in h.errors()],
                "streams": [s.summary() for s in streams],
                "rejected": [(c.name, c.verdict) for s in streams for c in s.client if c.verdict != "accepted"],
                "tool_results": [e.content for s in streams for e in s.client_events("toolResult")],
                "audio_frames_out": h.output.frames,
                "request_host": HOST,
            })
            if fake.replay is not None:
                rep = fake.replay.report()
                out["replay_all_played"] = rep.all_played
                out["replay_report"] = str(rep)[:4000]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.helpers.livekit_upstream")
    ap.add_argument("--cassette", default=None)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    if Path("/etc/hosts").read_text().find(HOST) < 0:
        print(json.dumps({"error": f"/etc/hosts does not map {HOST}; run inside the test's namespace"}))
        return 2
    result = asyncio.run(run(args.cassette, args.timeout))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
