"""``python -m fakeserver serve``: run the fake Nova Sonic endpoint (design §8 contract).

::

    python -m fakeserver serve [--host 127.0.0.1] [--port 0] [--speed X] [--ready-file FILE]
                               [--region us-east-1] [--fault SPEC ...] [--seed N] [--log-level info]
                               [--cassette PATH [--match-on NAME,...] [--replay-ids recorded|fresh]]

Without ``--cassette`` it serves the scripted responder (the default script). With it, it replays
the cassette (``fakeserver.replay``): each new stream takes the next recorded stream; a loading
error (missing, corrupt or truncated file) is printed with the line it is about and the process
exits 2 before listening. Each replay mismatch is logged (the full report) when it happens, and
the final report (mismatches, unused recorded interactions) is logged to stderr when it stops.

When the server is listening, FILE (written atomically) holds JSON with ``endpoint``, ``ca_file``,
``region``, ``access_key_id``, ``secret_access_key`` (and ``port``, ``speed``, ``pid``). The same
line is printed on stdout. One log line per finished stream goes to stderr. SIGTERM or SIGINT
stop it cleanly (open streams get GOAWAY, then the process exits 0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import signal
import sys
import tempfile
from pathlib import Path

from novasonic.cassette import CassetteError

from .api import FakeNovaSonic
from .faults import Fault
from .replay import MATCHERS, ReplayConfig

__all__ = ["main", "build_parser"]


def _speed(text: str) -> float:
    if text in ("inf", "max", "fastest"):
        return math.inf
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0 (or 'inf' for as fast as causality allows)")
    return value


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fakeserver", description="Fake Amazon Nova Sonic (Bedrock bidirectional stream) endpoint")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve until SIGTERM/SIGINT")
    s.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    s.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    s.add_argument("--allow-non-loopback", action="store_true", help="allow binding a non-loopback address")
    s.add_argument("--speed", type=_speed, default=1.0, help="scaled clock: service seconds per wall second, or 'inf'")
    s.add_argument("--ready-file", type=Path, help="write the endpoint/CA/credentials JSON here when ready")
    s.add_argument("--region", default="us-east-1")
    s.add_argument("--fault", type=_fault, action="append", default=[], metavar="SPEC", help="fault spec, e.g. 'throttlingException@client:audioInput#20' (repeatable)")
    s.add_argument("--seed", type=int, help="seed for service-side ids (deterministic runs)")
    s.add_argument("--accept-any-key-id", action="store_true", help="accept any access key id signed with the published secret")
    s.add_argument("--no-verify-signatures", action="store_true", help="skip SigV4 checks (unsigned clients)")
    s.add_argument("--tls-cert", help="server certificate (PEM); needs --tls-key and --tls-ca")
    s.add_argument("--tls-key")
    s.add_argument("--tls-ca")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--cassette", type=Path, help="replay this cassette instead of the scripted responder")
    s.add_argument("--match-on", action="append", default=[], metavar="NAMES",
                   help="replay matchers, comma-separated (repeatable); 'default' = the lenient defaults; "
                        f"known: default, {', '.join(MATCHERS)}")
    s.add_argument("--replay-ids", choices=["recorded", "fresh"], default="recorded",
                   help="service ids a replay sends: the recorded ones (default) or fresh ones")
    return p


def _write_ready(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


async def _serve(args: argparse.Namespace) -> int:
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not (args.tls_cert and args.tls_key and args.tls_ca):
            print("error: --tls-cert, --tls-key and --tls-ca go together", file=sys.stderr)
            return 2
        tls = (args.tls_cert, args.tls_key, args.tls_ca)
    if (args.match_on or args.replay_ids != "recorded") and args.cassette is None:
        print("error: --match-on and --replay-ids need --cassette", file=sys.stderr)
        return 2
    replay: dict = {}
    if args.cassette is not None:
        replay = {"cassette": args.cassette, "match_on": args.match_on or None,
                  "replay_config": ReplayConfig(ids=args.replay_ids)}
    fake = FakeNovaSonic(
        **replay,
        faults=args.fault,
        tls=tls,
        host=args.host,
        port=args.port,
        allow_non_loopback=args.allow_non_loopback,
        speed=args.speed,
        region=args.region,
        seed=args.seed,
        accept_any_key_id=args.accept_any_key_id,
        verify_signatures=not args.no_verify_signatures,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        # Everything loaded so far (modules, pydantic schemas, TLS material) lives as long as the
        # process: keep it out of the cyclic collector's full passes, which otherwise rescan it
        # and stall the event loop (tens of ms per full collection under load).
        gc.freeze()
        doc = {**fake.info(), "pid": os.getpid()}
        if args.ready_file:
            _write_ready(args.ready_file, doc)
        print(json.dumps(doc), flush=True)
        await stop.wait()
        logging.getLogger("fakeserver").info("stopping (%d streams served)", fake.journal.opened)
    if fake.replay is not None and fake.replay.all_played:  # otherwise FakeNovaSonic.close logged the report
        logging.getLogger("fakeserver.replay").info("%s", fake.replay.report())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve":
        try:
            return asyncio.run(_serve(args))
        except CassetteError as exc:  # the loader's message names the file and the line
            print(f"error: cannot replay the cassette: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # bad configuration (e.g. non-loopback bind, unknown matcher)
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 2
