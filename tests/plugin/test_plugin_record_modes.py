"""Record modes: names and meanings (pytest-recording's), precedence (command line > marker >
config > ini > ``none``), recording through the capture proxy to an upstream given by option,
and living with pytest-recording installed, blocked, absent, or loaded in either order."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from novasonic.cassette import diff_cassettes, load_cassette
from tests.plugin.inner import CONFTEST, INI

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "cassettes"
RUN = ("-p", "no:randomly", "-p", "no:cacheprovider")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


# --------------------------------------------------------------------------- precedence

PRECEDENCE_TESTS = '''
import pytest

@pytest.fixture
def nova_config():
    return {CONFIG}

def test_config(nova_record_mode):
    print("MODE", "config", nova_record_mode)

@pytest.mark.nova_cassette(record_mode="rewrite")
def test_marker(nova_record_mode):
    print("MODE", "marker", nova_record_mode)
'''


def modes(result: pytest.RunResult) -> dict[str, str]:
    out = {}
    for line in result.stdout.lines:
        if "MODE " in line:
            _, test, mode = line[line.index("MODE "):].split()[:3]
            out[test] = mode
    return out


def run_modes(project: pytest.Pytester, config: str, *args: str, ini: str = "") -> tuple[dict[str, str], str]:
    project.makepyfile(test_modes=PRECEDENCE_TESTS.replace("{CONFIG}", config))
    project.makeini(INI + (f"nova_record_mode = {ini}\n" if ini else ""))
    # The marker starts the fixture: in a record mode it records (nothing, here) from the
    # upstream fake server; in mode none its missing cassette fails the test before the print.
    result = project.runpytest(*RUN, "-s", *args)
    return modes(result), result.stdout.str()


@pytest.mark.parametrize("recording", [True, False], ids=["with-pytest-recording", "without"])
def test_precedence_command_line_over_marker_over_config_over_ini(
    project: pytest.Pytester, recording: bool, upstream: Callable[[str], Path]
) -> None:
    extra = ("-p", "no:recording") if not recording else ()
    extra = (*extra, f"--nova-upstream-ready-file={upstream('nova2_text_turn')}")
    assert run_modes(project, "{}", *extra)[0] == {"config": "none", "marker": "rewrite"}  # default: none
    assert run_modes(project, "{}", *extra, ini="once")[0] == {"config": "once", "marker": "rewrite"}
    got, _ = run_modes(project, "{'record_mode': 'all'}", *extra, ini="once")
    assert got == {"config": "all", "marker": "rewrite"}
    # The command line wins over all of them (pytest-recording 0.14 lets vcr_config beat it).
    got, _ = run_modes(project, "{'record_mode': 'all'}", "--record-mode=new_episodes", *extra, ini="once")
    assert got == {"config": "new_episodes", "marker": "new_episodes"}
    got, out = run_modes(project, "{'record_mode': 'all'}", "--record-mode=none", *extra, ini="once")
    assert got == {"config": "none"}
    assert "test_marker.jsonl (record mode 'none' replays only)" in out  # the marker test ran in mode none


def test_vcr_config_record_mode_is_honoured_below_nova_config(project: pytest.Pytester) -> None:
    project.makepyfile(test_vcr='''
        import pytest

        @pytest.fixture
        def vcr_config():
            return {"record_mode": "once"}

        def test_from_vcr_config(nova_record_mode):
            assert nova_record_mode == "once"

        class TestOverride:
            @pytest.fixture
            def nova_config(self):
                return {"record_mode": "all"}

            def test_nova_config_wins(self, nova_record_mode):
                assert nova_record_mode == "all"
    ''')
    project.runpytest(*RUN).assert_outcomes(passed=2)


def test_mode_names_are_checked(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="def test_x(nova_record_mode):\n    pass\n")
    bad_cli = project.runpytest(*RUN, "--record-mode=sometimes")
    assert bad_cli.ret == pytest.ExitCode.USAGE_ERROR
    bad_cli.stderr.fnmatch_lines(["*--record-mode: invalid choice: 'sometimes'*"])
    project.makeini(INI + "nova_record_mode = sometimes\n")
    bad_ini = project.runpytest(*RUN)
    assert bad_ini.ret != 0
    bad_ini.stdout.fnmatch_lines(["*record mode 'sometimes' is not one of once, new_episodes, none, all, rewrite*"])


# --------------------------------------------------------------------------- plugin loading


def run_subprocess(project: pytest.Pytester, *args: str, autoload: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("PYTEST_ADDOPTS", None)
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", *RUN, *args], cwd=project.path, env=env,
                          capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize(
    "plugins",
    [
        (),  # both autoloaded (this plugin is loaded first: its entry point sorts first)
        ("-p", "fakeserver.pytest_plugin", "-p", "pytest_recording.plugin"),
        ("-p", "pytest_recording.plugin", "-p", "fakeserver.pytest_plugin"),
        ("-p", "fakeserver.pytest_plugin"),  # pytest-recording not loaded at all
    ],
    ids=["autoload", "ours-first", "recording-first", "recording-absent"],
)
def test_record_mode_is_registered_exactly_once_whatever_the_loading_order(
    project: pytest.Pytester, plugins: tuple[str, ...]
) -> None:
    project.makepyfile(test_x='''
        def test_mode(nova_record_mode, request):
            assert nova_record_mode == "once"
            pm = request.config.pluginmanager
            has_vcr = pm.has_plugin("recording") or pm.has_plugin("pytest_recording.plugin")
            print("RECORDING", has_vcr)
    ''')
    r = run_subprocess(project, "-s", "--record-mode=once", *plugins, autoload=not plugins)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("RECORDING True" in r.stdout) == (plugins != ("-p", "fakeserver.pytest_plugin"))
    help_text = run_subprocess(project, "--help", *plugins, autoload=not plugins).stdout
    assert help_text.count("--record-mode=") == 1


def test_pytest_recording_keeps_working_next_to_this_plugin(project: pytest.Pytester) -> None:
    project.makepyfile(test_both='''
        import pytest

        @pytest.mark.vcr
        def test_vcr_fixture_still_yields_a_cassette(vcr):
            assert vcr is not None and vcr.record_mode == "none"

        def test_nova_fixtures_are_there(nova_record_mode, nova_cassette_dir):
            assert nova_record_mode == "none"
    ''')
    project.runpytest(*RUN).assert_outcomes(passed=2)


# --------------------------------------------------------------------------- recording


RECORD_TEST = '''
import pytest
from conftest import play

@pytest.mark.nova_cassette
def test_text_turn(nova_sonic):
    print("KIND", nova_sonic.mode, nova_sonic.cassette.path)
    play("nova2_text_turn")
    assert nova_sonic.journal.last().end == "completed"
'''


def test_once_records_through_the_proxy_then_replays(project: pytest.Pytester, upstream: Callable[[str], Path]) -> None:
    ready = upstream("nova2_text_turn")
    project.makepyfile(test_rec=RECORD_TEST)
    first = project.runpytest(*RUN, "-s", "--record-mode=once", f"--nova-upstream-ready-file={ready}")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*KIND record *", "*Nova Sonic cassettes recorded*",
                                "*test_text_turn.jsonl (once): 1 stream (0 open)*"])
    cassette = project.path / "cassettes" / "test_rec" / "test_text_turn.jsonl"
    recorded = load_cassette(cassette)
    assert recorded.header.source == "captured" and recorded.header.meta["test"] == "test_rec.py::test_text_turn"
    assert diff_cassettes(load_cassette(SHIPPED / "nova2_text_turn.jsonl"), recorded).equal
    # Default mode (none): the new cassette replays; nothing goes upstream.
    again = project.runpytest(*RUN, "-s")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*KIND replay *"])
    # once with the cassette there: replay too.
    project.runpytest(*RUN, "-s", "--record-mode=once").stdout.fnmatch_lines(["*KIND replay *"])


def test_rewrite_and_all_replace_the_cassette(project: pytest.Pytester, cassette_in: Callable[..., Path],
                                              upstream: Callable[[str], Path]) -> None:
    old = cassette_in(project, "nova2_tool_call", "test_rec", "test_text_turn")  # another conversation
    project.makepyfile(test_rec=RECORD_TEST + '''

@pytest.mark.nova_cassette("test_text_turn")
def test_during_all_the_old_cassette_is_kept(nova_sonic, request):
    if nova_sonic.record_mode == "all":
        assert b"toolUse" in nova_sonic.cassette.path.read_bytes()  # still the old one
        assert nova_sonic.proxy.path.name == "test_text_turn.jsonl.recording"
    play("nova2_text_turn")
''')
    project.runpytest(*RUN, "--record-mode=rewrite", f"--nova-upstream-ready-file={upstream('nova2_text_turn')}",
                      "-k", "test_text_turn and not during").assert_outcomes(passed=1)
    assert diff_cassettes(load_cassette(SHIPPED / "nova2_text_turn.jsonl"), load_cassette(old)).equal
    old.write_bytes((SHIPPED / "nova2_tool_call.jsonl").read_bytes())
    project.runpytest(*RUN, "--record-mode=all", f"--nova-upstream-ready-file={upstream('nova2_text_turn')}",
                      "-k", "during").assert_outcomes(passed=1)
    assert diff_cassettes(load_cassette(SHIPPED / "nova2_text_turn.jsonl"), load_cassette(old)).equal
    assert not old.with_name(old.name + ".recording").exists()


def test_new_episodes_replays_recorded_streams_and_appends_new_ones(
    project: pytest.Pytester, cassette_in: Callable[..., Path], upstream: Callable[[str], Path]
) -> None:
    path = cassette_in(project, "nova2_text_turn", "test_episodes", "test_two_streams")
    project.makepyfile(test_episodes='''
        import pytest
        from conftest import play

        @pytest.mark.nova_cassette
        def test_two_streams(nova_sonic):
            assert nova_sonic.mode == "new_episodes"
            play("nova2_text_turn")   # stream 0: the recorded one, replayed
            play("nova2_text_turn")   # stream 1: new, recorded live
            journal = nova_sonic.journal
            assert [s.end for s in journal] == ["completed", "completed"]
            assert nova_sonic.fake.replay.all_played
    ''')
    result = project.runpytest(*RUN, "--record-mode=new_episodes",
                               f"--nova-upstream-ready-file={upstream('nova2_text_turn')}")
    result.assert_outcomes(passed=1)
    c = load_cassette(path)
    assert len(c) == 2
    shipped = load_cassette(SHIPPED / "nova2_text_turn.jsonl")
    assert path.read_bytes().startswith((SHIPPED / "nova2_text_turn.jsonl").read_bytes())  # stream 0 untouched
    assert [e.EVENT_NAME for e in c[1].server_events()] == [e.EVENT_NAME for e in shipped[0].server_events()]
    assert c[1].end_reason == "completed"


def test_recording_errors_are_loud_and_keep_the_old_cassette(project: pytest.Pytester, tmp_path: Path) -> None:
    project.makepyfile(test_rec=RECORD_TEST)
    missing = tmp_path / "nope.json"
    result = project.runpytest(*RUN, "--record-mode=once", f"--nova-upstream-ready-file={missing}")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*cannot read the upstream ready file {missing}*"])
    assert not (project.path / "cassettes" / "test_rec" / "test_text_turn.jsonl").exists()
