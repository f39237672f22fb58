"""Record the scenarios, write the cassettes, and check committed ones for drift.

``generate(out_dir)`` runs every scenario (or the ``names`` given), converts the server's
journals with ``novasonic.cassette.cassette_from_journal`` (header ``source: scripted``, the
scenario's ``meta``, default compact audio policy, the client's credentials refused by the
writer's secret check), loads each file back *with* rule validation, and, once the directory
holds every scenario's cassette, writes its ``README.md`` (the list, with sizes).

Determinism and ``created``
    A scenario gives the same bytes on every run (seeded ids and names, lock-step driving,
    driven clock: see ``lockstep``). The only field that would differ is the header's
    ``created``; so a file whose content is unchanged is **left untouched** (it keeps its
    ``created``: the time its content was generated), and a changed or new file gets the
    current time. "Content" is every byte except the header's ``created`` and ``toolkit``
    (a version bump alone does not rewrite the library). Regenerating an up-to-date library
    therefore changes nothing in git.

``check(dir)``
    Regenerates into a temporary directory and compares with ``dir`` on the same content. Any
    difference is drift and is explained: missing or extra cassettes, a semantic diff
    (``diff_cassettes`` with timing, ids rebound) when the conversation changed, else the first
    differing line (a format, id or timing change); and a stale README. ``python -m
    tools.cassette_gen --check`` exits 1 on drift: run it in CI.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from novasonic.cassette import (
    Cassette,
    CassetteHeader,
    DiffOptions,
    WriterOptions,
    cassette_from_journal,
    diff_cassettes,
    load_cassette,
)

from .readme import render_readme
from .scenarios import SCENARIOS, Scenario

__all__ = [
    "Generated",
    "CheckReport",
    "generate",
    "check",
    "check_listing",
    "select",
    "content_bytes",
    "header_for",
    "RECORD_TIMEOUT_S",
    "README_NAME",
    "IGNORED_HEADER_KEYS",
    "DEFAULT_JOBS",
]

#: Wall-clock bound for one scenario (the 8-minute one takes the longest).
RECORD_TIMEOUT_S = 300.0
#: Scenarios recorded at once (they mostly wait on I/O; see ``_generate_all``).
DEFAULT_JOBS = 4
README_NAME = "README.md"
#: Header keys that are not content (see the module doc).
IGNORED_HEADER_KEYS = ("created", "toolkit")
REGION = "us-east-1"


@dataclass(frozen=True)
class Generated:
    """One cassette written (or left as it was) by ``generate``."""

    name: str
    path: Path
    status: str  # "new" | "updated" | "unchanged"
    cassette: Cassette
    wall_s: float

    @property
    def size_bytes(self) -> int:
        return self.cassette.size_bytes

    @property
    def kb_per_minute(self) -> float:
        return self.cassette.bytes_per_minute() / 1024.0


@dataclass
class CheckReport:
    """What ``check`` found; ``ok`` when the directory is exactly what the generator makes."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        if self.ok:
            return f"cassette library up to date ({len(self.checked)} cassettes checked)"
        head = f"cassette library drift: {len(self.problems)} problem(s)"
        fix = "fix: python -m tools.cassette_gen --out <dir> (then review and commit the changes)"
        return "\n\n".join([head, *self.problems, fix])


def select(names: Iterable[str] | None) -> list[Scenario]:
    """The scenarios named (all when ``names`` is None), in library order; unknown names fail."""
    if names is None:
        return list(SCENARIOS.values())
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in SCENARIOS if n in wanted]


def header_for(s: Scenario, created: str | None = None) -> CassetteHeader:
    fields: dict[str, object] = {
        "model": s.model_id, "voice": s.voice, "input_rate": 16000, "output_rate": 24000,
        "region": REGION, "source": "scripted", "meta": s.meta(),
    }
    if created is not None:
        fields["created"] = created
    return CassetteHeader.model_validate(fields)


def content_bytes(data: bytes) -> bytes:
    """The file without the header's ``created``/``toolkit`` (what "unchanged" compares)."""
    first, nl, rest = data.partition(b"\n")
    try:
        header = json.loads(first)
    except ValueError:
        return data
    if not isinstance(header, dict):
        return data
    for key in IGNORED_HEADER_KEYS:
        header.pop(key, None)
    return json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + nl + rest


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _quiet_sdk_teardown(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop one expected message: when the service ended a stream (an exception), the SDK's
    request-body task fails to end its side ("HTTP-stream has completed") as the client tears
    the old stream down before restarting. Everything else goes to the default handler."""
    exc = context.get("exception")
    if isinstance(exc, RuntimeError) and "AWS_ERROR_HTTP_STREAM_HAS_COMPLETED" in str(exc):
        return
    loop.default_exception_handler(context)


async def _record_and_write(s: Scenario, path: Path, created: str) -> None:
    recorded = await asyncio.wait_for(s.record(s), RECORD_TIMEOUT_S)
    cassette_from_journal(recorded.journals, header_for(s, created), path,
                          options=WriterOptions(secrets=recorded.secrets), overwrite=True)


def _install(out: Path, s: Scenario, tmp: Path, started: float) -> Generated:
    """Move a freshly written cassette into place unless its content is unchanged."""
    final = out / f"{s.name}.jsonl"
    try:
        new = tmp.read_bytes()
        if final.exists() and content_bytes(final.read_bytes()) == content_bytes(new):
            status = "unchanged"
        else:
            status = "updated" if final.exists() else "new"
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    cassette = load_cassette(final)  # validated against the protocol rules
    return Generated(s.name, final, status, cassette, time.perf_counter() - started)


async def _generate_all(scenarios: list[Scenario], out: Path, jobs: int,
                        log: Callable[[str], None] | None) -> list[Generated]:
    asyncio.get_running_loop().set_exception_handler(_quiet_sdk_teardown)
    sem = asyncio.Semaphore(jobs)
    created = _now()

    async def one(s: Scenario) -> Generated:
        async with sem:
            started = time.perf_counter()
            tmp = out / f".{s.name}.jsonl.tmp"
            try:
                await _record_and_write(s, tmp, created)
            except BaseException:
                if tmp.exists():
                    tmp.unlink()
                raise
            g = _install(out, s, tmp, started)
            if log is not None:
                c = g.cassette
                log(f"{g.status:9} {g.path}  {g.size_bytes / 1024:6.1f} KB  {c.duration_s:7.1f} s  "
                    f"{g.kb_per_minute:5.1f} KB/conv-min  streams={len(c)}  "
                    f"ends={[st.end_reason for st in c]}  ({g.wall_s:.1f} s)")
            return g

    # Scenarios are independent (each has its own server, clock and client) and each is
    # deterministic on its own, so running several at once changes nothing in the files; it
    # only overlaps their waits on the SDK's I/O thread.
    # The slow ones start first (shorter total time); results keep the library order.
    order = sorted(range(len(scenarios)), key=lambda i: not scenarios[i].slow)
    tasks = {i: asyncio.ensure_future(one(scenarios[i])) for i in order}
    try:
        await asyncio.gather(*tasks.values())
    finally:
        for t in tasks.values():
            t.cancel()
    return [tasks[i].result() for i in range(len(scenarios))]


def generate(
    out_dir: str | os.PathLike[str],
    names: Iterable[str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
    readme: bool = True,
    jobs: int = DEFAULT_JOBS,
) -> list[Generated]:
    """Record the scenarios into ``out_dir`` (see the module doc), ``jobs`` at a time.
    Returns what was written, in library order."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1 (got {jobs})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(_generate_all(select(names), out, jobs, log))
    if readme and all((out / f"{name}.jsonl").exists() for name in SCENARIOS):
        # From the files in the directory, so a partial run (--only) keeps the README true too.
        fresh = {g.name: g.cassette for g in results}
        items = [(s, fresh[s.name] if s.name in fresh else load_cassette(out / f"{s.name}.jsonl", validate=False))
                 for s in SCENARIOS.values()]
        text = render_readme(items)
        path = out / README_NAME
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            if log is not None:
                log(f"wrote     {path}")
    return results


def check(
    committed_dir: str | os.PathLike[str],
    names: Iterable[str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
    jobs: int = DEFAULT_JOBS,
) -> CheckReport:
    """Regenerate the scenarios (all, or ``names``) into a temporary directory and compare them
    with ``committed_dir``; also check that its README lists the committed cassettes as
    ``render_readme`` writes it and that no unknown cassette sits there."""
    committed = Path(committed_dir)
    report = CheckReport()
    scenarios = select(names)
    if not committed.is_dir():
        report.problems.append(f"{committed}: no such directory")
        return report
    with tempfile.TemporaryDirectory(prefix="cassette-check-") as tmp:
        fresh_dir = Path(tmp)
        generate(fresh_dir, [s.name for s in scenarios], log=log, readme=False, jobs=jobs)
        for s in scenarios:
            report.checked.append(s.name)
            ours, fresh = committed / f"{s.name}.jsonl", fresh_dir / f"{s.name}.jsonl"
            if not ours.exists():
                report.problems.append(f"{ours}: missing (the generator makes it)")
                continue
            problem = _compare(ours, fresh)
            if problem:
                report.problems.append(problem)
    report.problems.extend(check_listing(committed))
    return report


def check_listing(committed_dir: str | os.PathLike[str]) -> list[str]:
    """Problems with the directory as a whole (no regeneration): cassettes no scenario makes,
    and a README that does not list the committed cassettes as the generator writes it."""
    committed = Path(committed_dir)
    problems: list[str] = []
    known = {f"{name}.jsonl" for name in SCENARIOS}
    for extra in sorted(p.name for p in committed.glob("*.jsonl") if p.name not in known):
        problems.append(f"{committed / extra}: not made by the generator (no scenario of that name)")
    missing = [name for name in SCENARIOS if not (committed / f"{name}.jsonl").exists()]
    readme = committed / README_NAME
    if missing:
        problems.append(f"{committed}: cassettes missing: {', '.join(missing)}")
    elif not readme.exists():
        problems.append(f"{readme}: missing")
    else:
        try:
            items = [(s, load_cassette(committed / f"{s.name}.jsonl", validate=False)) for s in SCENARIOS.values()]
        except Exception as exc:
            problems.append(f"{committed}: a cassette does not load: {exc}")
        else:
            if readme.read_text(encoding="utf-8") != render_readme(items):
                problems.append(f"{readme}: stale (it does not list the committed cassettes as generated)")
    return problems


def _compare(ours: Path, fresh: Path) -> str | None:
    a, b = ours.read_bytes(), fresh.read_bytes()
    if content_bytes(a) == content_bytes(b):
        return None
    try:
        d = diff_cassettes(ours, fresh, DiffOptions(timing=True, time_tolerance_s=0.0, audio_tolerance_ms=0.0))
    except Exception as exc:  # a committed file that does not even load is drift too
        return f"{ours}: differs from the generator's output and does not load: {exc}"
    if not d.equal:
        return f"{ours}: the conversation differs from what the generator records now:\n{d.render()}"
    la, lb = content_bytes(a).split(b"\n"), content_bytes(b).split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb, strict=False), start=1):
        if x != y:
            return (f"{ours}:{i}: differs from the generator's output (same conversation; a header, id, "
                    f"format or timing change):\n  committed: {_short(x)}\n  generated: {_short(y)}")
    return f"{ours}: differs in length from the generator's output ({len(la)} vs {len(lb)} lines)"


def _short(line: bytes, limit: int = 240) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"
