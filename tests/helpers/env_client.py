"""A stock SDK client configured ONLY through environment variables, run as a child process:

    AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://localhost:PORT SSL_CERT_FILE=ca.pem \\
    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1 \\
        python -m tests.helpers.env_client [MODEL_ID]

The only code-level choice is the CRT transport (the SDK's default aiohttp transport cannot do
duplex; every real application passes it). It plays one short session (SYSTEM prompt, one second
of synthetic speech then silence, the documented shutdown), reads until the end of the stream and
prints one JSON line: ``{"events": [...names...], "error": null | "Class: message"}``. Exit code
0 when the stream ended without an exception, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from smithy_http.aio.crt import AWSCRTHTTPClient

from fakeserver.audio import silence, synth_speech
from novasonic.events import AudioInput
from novasonic.transport import open_duplex
from tests.helpers import factories as f

MODEL = "amazon.nova-2-sonic-v1:0"
TIMEOUT = 20.0


async def main(model_id: str) -> int:
    config = await AsyncBedrockRuntimeConfig.resolve(transport=AWSCRTHTTPClient())  # endpoint, region, creds: env
    client = AsyncBedrockRuntimeClient(config=config)
    names: list[str] = []
    error = None
    try:
        d = await open_duplex(client, model_id)
        pcm = synth_speech(1000) + silence(1500)
        frames = [AudioInput.from_pcm(f.PROMPT, "mic", pcm[i : i + 1024]) for i in range(0, len(pcm), 1024)]
        events = [
            f.session_start(nested="MEDIUM"),
            f.prompt_start(),
            *f.system_block("You are a test."),
            f.audio_start(),
            *frames,
            f.content_end("mic"),
            f.prompt_end(),
            f.session_end(),
        ]

        async def reader() -> None:
            while (ev := await asyncio.wait_for(d.receive(), TIMEOUT)) is not None:
                names.append(ev.EVENT_NAME)

        task = asyncio.create_task(reader())
        for ev in events:
            await d.send(ev)
            await asyncio.sleep(0.001)
        await d.close_input()
        try:
            await asyncio.wait_for(task, TIMEOUT)
        except Exception as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    except Exception as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    finally:
        await client.close()
    print(json.dumps({"events": names, "error": error}), flush=True)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else MODEL)))
