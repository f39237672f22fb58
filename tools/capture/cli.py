"""``nova-capture``: run the capture proxy from the command line.

::

    nova-capture --out calls/weather.jsonl [--region us-east-1]            # upstream: real Bedrock
    nova-capture --out copy.jsonl --upstream https://localhost:8443 --upstream-ca ca.pem
    nova-capture --out copy.jsonl --upstream-ready-file fake.json          # a fake server's ready file
    nova-capture --out new.jsonl --play old.jsonl                          # re-record old.jsonl, then exit
    nova-cassette diff old.jsonl new.jsonl                                 # ... did the service drift?

Options: ``--host``/``--port`` (loopback, port 0 = any), ``--ready-file F`` (JSON: endpoint,
ca_file, region, access_key_id, secret_access_key, port, out, upstream, pid; written atomically
once listening), ``--env-file F`` (``export`` lines for a shell: ``source F`` points an agent at
the proxy), ``--overwrite`` / ``--append`` (an existing cassette is refused otherwise),
``--user-audio segments|sidecar|inline`` and ``--assistant-audio elided|sidecar|inline`` (default:
no voice kept, assistant audio elided), ``--meta KEY=VALUE`` (header metadata), ``--progress
auto|on|off``, ``--fsync``.

Progress goes to stderr while recording: streams (open), events up/down, audio seconds in/out,
errors and the cassette's size: one updating line on a terminal, a line every few seconds (and
at each change in the number of streams) otherwise. SIGINT/SIGTERM stop cleanly: open streams
are cut, the cassette is closed. Exit status: 0; 1 when the recording failed (the reason is
printed) or ``--play`` did not finish; 2 for usage and set-up errors (existing ``--out``, no
upstream credentials, a port in use).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

log = logging.getLogger("tools.capture")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nova-capture",
        description="Recording proxy for Amazon Nova Sonic: point a client at it like at the fake server; "
                    "it forwards to the upstream (real Bedrock by default) and writes a cassette.")
    p.add_argument("--out", required=True, type=Path, help="cassette to write (.jsonl)")
    up = p.add_argument_group("upstream (default: real Bedrock in --region, boto3 credential chain)")
    up.add_argument("--upstream", metavar="URL", help="forward to this https:// endpoint instead")
    up.add_argument("--upstream-ca", metavar="FILE", help="CA file the upstream's certificate chains to")
    up.add_argument("--upstream-ready-file", metavar="FILE",
                    help="a fake server's ready file: its endpoint, CA, region and credentials")
    p.add_argument("--region", default=None, help="AWS region (default: AWS_REGION, else us-east-1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--allow-non-loopback", action="store_true")
    p.add_argument("--ready-file", type=Path)
    p.add_argument("--env-file", type=Path, help="write 'export VAR=value' lines pointing a client at the proxy")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    mode.add_argument("--append", action="store_true", help="append new streams to an existing --out")
    p.add_argument("--user-audio", choices=["segments", "sidecar", "inline"], default="segments",
                   help="keep the user's voice? (default: segments = only where speech was)")
    p.add_argument("--assistant-audio", choices=["elided", "sidecar", "inline"], default="elided")
    p.add_argument("--fsync", action="store_true", help="fsync the cassette at every flush")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="header metadata (repeatable)")
    p.add_argument("--play", type=Path, metavar="CASSETTE",
                   help="re-enact CASSETTE's client side through the proxy (stock SDK client), then stop")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-ca")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _quiet_sdk_teardown(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop one known message: when a stream ended from the service's side, the SDK's request
    body task fails to end its own side ("HTTP-stream has completed"). Everything else is shown."""
    exc = context.get("exception")
    if exc is not None and "AWS_ERROR_HTTP_STREAM_HAS_COMPLETED" in str(exc):
        return
    loop.default_exception_handler(context)


class _Progress:
    def __init__(self, proxy: Any, mode: str) -> None:
        self.proxy = proxy
        self.tty = sys.stderr.isatty()
        self.on = mode != "off"
        self._last = ""
        self._last_streams = -1
        self._since = 0.0

    async def run(self) -> None:
        if not self.on:
            return
        while True:
            await asyncio.sleep(0.5)
            self.show()

    def show(self, final: bool = False) -> None:
        if not self.on:
            return
        stats = self.proxy.stats
        line = "nova-capture: " + stats.line(self.proxy.path)
        self._since += 0.5
        if self.tty:
            if line != self._last or final:
                sys.stderr.write("\r" + line.ljust(len(self._last)) + ("\n" if final else ""))
                sys.stderr.flush()
        elif final or (line != self._last and (stats.streams != self._last_streams or self._since >= 5.0)):
            print(line, file=sys.stderr, flush=True)
            self._since = 0.0
        self._last = line
        self._last_streams = stats.streams


async def _run(args: argparse.Namespace) -> int:
    from tools.capture import CaptureProxy, Upstream
    from tools.capture.logs import install_redaction
    from tools.capture.upstream import UpstreamUnreachable

    asyncio.get_running_loop().set_exception_handler(_quiet_sdk_teardown)
    secrets: list[str] = []
    install_redaction(lambda: secrets)  # debug logs of h2/hpack/the SDK show headers: never a key
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if args.upstream_ready_file and (args.upstream or args.upstream_ca):
        print("error: --upstream-ready-file replaces --upstream/--upstream-ca", file=sys.stderr)
        return 2
    if args.upstream_ca and not args.upstream:
        print("error: --upstream-ca needs --upstream", file=sys.stderr)
        return 2
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not (args.tls_cert and args.tls_key and args.tls_ca):
            print("error: --tls-cert, --tls-key and --tls-ca go together", file=sys.stderr)
            return 2
        tls = (args.tls_cert, args.tls_key, args.tls_ca)
    meta: dict[str, str] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --meta takes KEY=VALUE (got {item!r})", file=sys.stderr)
            return 2
        meta[key] = value
    try:
        if args.upstream_ready_file:
            upstream: Any = Upstream.from_ready_file(args.upstream_ready_file)
        else:
            upstream = Upstream(region=region, endpoint=args.upstream, ca_file=args.upstream_ca)
        from novasonic.cassette import WriterOptions

        proxy = CaptureProxy(
            args.out, upstream=upstream, host=args.host, port=args.port, allow_non_loopback=args.allow_non_loopback,
            tls=tls, options=WriterOptions(user_audio=args.user_audio, assistant_audio=args.assistant_audio,
                                           fsync=args.fsync),
            meta=meta, overwrite=args.overwrite, append=args.append,
        )
        await proxy.start()
        secrets.extend(proxy.recorder._all_secrets())  # noqa: SLF001 - the same list the cassette guard uses
    except (FileExistsError, FileNotFoundError, ValueError, OSError, UpstreamUnreachable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    progress = _Progress(proxy, args.progress)
    status = 0
    try:
        gc.freeze()  # long-lived objects out of the collector's full passes (latency, as the fake server)
        doc = {**proxy.info(), "pid": os.getpid()}
        if args.ready_file:
            _write_atomic(args.ready_file, json.dumps(doc))
        if args.env_file:
            _write_atomic(args.env_file, "".join(f"export {k}={shlex.quote(v)}\n" for k, v in proxy.env.items())
                          + "unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE\n")
        print(json.dumps(doc), flush=True)
        print(f"nova-capture: listening on {proxy.endpoint} → {proxy.upstream.describe()}; recording to {proxy.path}",
              file=sys.stderr, flush=True)
        ticker = asyncio.create_task(progress.run())
        if args.play is not None:
            from novasonic.cassette import load_cassette
            from tools.sdk_driver.reenact import replay_cassette

            play = asyncio.create_task(replay_cassette(proxy, load_cassette(args.play)))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({play, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not play.done():
                play.cancel()
                status = 1
            elif play.exception() is not None:
                print(f"error: --play failed: {play.exception()!r}", file=sys.stderr)
                status = 1
        else:
            await stop.wait()
        ticker.cancel()
    finally:
        await proxy.close()
        progress.show(final=True)
    if proxy.error is not None:
        print(f"error: the recording stopped early: {proxy.error}", file=sys.stderr)
        return 1
    written = proxy.path.exists()
    print(f"nova-capture: {'wrote ' + str(proxy.path) if written else 'nothing recorded (no stream reached the upstream)'}"
          f" ({proxy.stats.streams} stream{'s' if proxy.stats.streams != 1 else ''})", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Their debug logs dump every frame and header (user audio included): not what --log-level
    # debug is for. Whatever they log is redacted anyway (tools.capture.logs).
    for noisy in ("hpack", "h2", "smithy_aws_event_stream", "smithy_core", "smithy_http", "aws_sdk_bedrock_runtime",
                  "awscrt", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
    return asyncio.run(_run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
