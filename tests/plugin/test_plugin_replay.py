"""The plugin in replay mode (``none``, the default): marker, fixtures, environment, journal,
strictness, default cassette paths, ``--disable-recording``, the session server, and the loud
failure when a replay-mode test aims at a real Bedrock endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.plugin.inner import CONFTEST, INI


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_marker_replays_the_cassette_through_an_environment_configured_client(
    project: pytest.Pytester, cassette_in: Callable[..., Path]
) -> None:
    cassette_in(project, "nova2_tool_call", "test_weather", "test_tool_call")
    project.makepyfile(test_weather='''
        import os
        import pytest
        from conftest import play

        SEEN = {}

        @pytest.mark.nova_cassette
        def test_tool_call(nova_sonic):
            assert nova_sonic.mode == "replay" and nova_sonic.record_mode == "none"
            assert os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == nova_sonic.endpoint
            assert os.environ["SSL_CERT_FILE"] == nova_sonic.ca_file
            assert os.environ["AWS_ACCESS_KEY_ID"] == nova_sonic.access_key_id
            SEEN["endpoint"] = nova_sonic.endpoint
            runs = play("nova2_tool_call")
            assert "toolUse" in [e.EVENT_NAME for e in runs[0].events] and runs[0].error is None
            assert nova_sonic.cassette.all_played, nova_sonic.cassette.report()
            assert nova_sonic.all_played and nova_sonic.cassette.play_count == 1 and len(nova_sonic.cassette) == 1
            journal = nova_sonic.journal.last()
            assert journal.end == "completed" and journal.auth == "ok"
            assert nova_sonic.cassette.path.name == "test_tool_call.jsonl"

        def test_environment_is_restored_after_the_test():
            assert os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") != SEEN["endpoint"]
    ''')
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_fixture_alone_works_too_and_the_marker_names_the_cassette(
    project: pytest.Pytester, cassette_in: Callable[..., Path]
) -> None:
    cassette_in(project, "nova2_text_turn", "test_named", "shared_text_turn")
    project.makepyfile(test_named='''
        import pytest
        from conftest import play

        def test_fixture_without_marker_uses_the_default_name(nova_sonic):
            raise AssertionError("never reached: the cassette does not exist")

        @pytest.mark.nova_cassette("shared_text_turn", speed=50.0)
        def test_named(nova_sonic):
            assert nova_sonic.cassette.path.name == "shared_text_turn.jsonl"
            assert nova_sonic.fake.config.speed == 50.0
            play("nova2_text_turn")
            assert nova_sonic.all_played
    ''')
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    expected = project.path / "cassettes" / "test_named" / "test_fixture_without_marker_uses_the_default_name.jsonl"
    result.stdout.fnmatch_lines([f"*Nova Sonic cassette not found: {expected}*--record-mode=once*"])


def test_default_paths_follow_pytest_recording(project: pytest.Pytester) -> None:
    project.makepyfile(test_paths=f'''
        import pytest

        class TestGroup:
            def test_in_class(self, nova_cassette_name, nova_cassette_dir, request):
                assert nova_cassette_name == "TestGroup.test_in_class"
                assert nova_cassette_dir == str(request.path.parent / "cassettes" / "test_paths")

        @pytest.mark.parametrize("city", ["a/b", "c:d"])
        def test_param(nova_cassette_name, city):
            assert "/" not in nova_cassette_name and ":" not in nova_cassette_name
            assert nova_cassette_name.startswith("test_param[")

        @pytest.mark.default_cassette("shared")
        def test_default_cassette_marker(nova_cassette_name):
            assert nova_cassette_name == "shared"

        def test_{"y" * 200}(nova_cassette_name):
            assert len(nova_cassette_name) == 150 and nova_cassette_name[-9] == "-"
            assert nova_cassette_name.startswith("test_yyyy")
    ''')
    project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider").assert_outcomes(passed=5)
    # Without pytest-recording the same paths are computed by this plugin.
    project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:recording").assert_outcomes(passed=5)


def test_strict_replay_fails_a_test_that_did_not_play_its_cassette(
    project: pytest.Pytester, cassette_in: Callable[..., Path]
) -> None:
    cassette_in(project, "nova2_text_turn", "test_strict", "test_plays_nothing")
    cassette_in(project, "nova2_text_turn", "test_strict", "test_lenient")
    project.makepyfile(test_strict='''
        import pytest

        @pytest.mark.nova_cassette
        def test_plays_nothing(nova_sonic):
            pass

        @pytest.mark.nova_cassette(strict=False)
        def test_lenient(nova_sonic):
            assert not nova_sonic.all_played
    ''')
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*did not play its whole cassette*", "*UNUSED*"])


def test_unknown_marker_keys_are_a_clear_error(project: pytest.Pytester) -> None:
    project.makepyfile(test_bad='''
        import pytest

        @pytest.mark.nova_cassette(sped=2)
        def test_typo(nova_sonic):
            pass
    ''')
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown keys *sped*; known: *speed*"])


REAL = "https://bedrock-runtime.us-east-1.amazonaws.com"


def test_a_replay_test_aiming_at_real_bedrock_fails_loudly(
    project: pytest.Pytester, cassette_in: Callable[..., Path]
) -> None:
    for test in ("test_explicit_endpoint", "test_swallowed"):
        cassette_in(project, "nova2_text_turn", "test_guard", test)
    project.makepyfile(test_guard=f'''
        import asyncio
        import pytest
        from novasonic.transport import make_client, open_duplex
        from novasonic.builder import EventBuilder

        async def talk_to_real_bedrock():
            client = await make_client(region="us-east-1", endpoint={REAL!r},
                                       access_key_id="AKIAAAAAAAAAAAAAAAAA", secret_access_key="x" * 40)
            d = await open_duplex(client, "amazon.nova-2-sonic-v1:0")
            for ev in EventBuilder("amazon.nova-2-sonic-v1:0").start("hi"):
                await d.send(ev)
            await asyncio.wait_for(d.await_output(), 10)

        @pytest.mark.nova_cassette(strict=False)
        def test_explicit_endpoint(nova_sonic):
            asyncio.run(talk_to_real_bedrock())

        @pytest.mark.nova_cassette(strict=False)
        def test_swallowed(nova_sonic):
            try:
                asyncio.run(talk_to_real_bedrock())
            except Exception:
                pass  # a client that retries and logs: the test must fail anyway

        def test_without_the_fixture_nothing_is_guarded(request):
            from fakeserver.pytest_plugin import _GUARD
            assert _GUARD.owners == []
    ''')
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    # test_swallowed's call passes (the client hid the error) and its teardown fails.
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        f"*FAILED test_guard.py::test_explicit_endpoint*",
    ])
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_swallowed*",
        f"*this test tried to reach the real Bedrock endpoint {REAL}*--record-mode=once*",
        "*FAILURES*",
        f"*NovaSonicNetworkBlocked: Nova Sonic replay (record mode 'none', cassette *test_explicit_endpoint.jsonl):"
        f" this test tried to reach the real Bedrock endpoint {REAL}*",
    ])


def test_block_network_guards_bedrock_for_tests_without_cassettes(project: pytest.Pytester) -> None:
    project.makepyfile(test_block=f'''
        import asyncio
        import pytest
        from fakeserver.pytest_plugin import NovaSonicNetworkBlocked
        from novasonic.transport import make_client, open_duplex

        async def open_real():
            client = await make_client(region="us-east-1", endpoint={REAL!r},
                                       access_key_id="AKIAAAAAAAAAAAAAAAAA", secret_access_key="x" * 40)
            d = await open_duplex(client, "amazon.nova-2-sonic-v1:0")
            await asyncio.wait_for(d.await_output(), 10)

        def test_blocked():
            with pytest.raises(Exception, match="network access is blocked") as info:
                asyncio.run(open_real())
            # the SDK wraps what its transport raised; the guard's error is the cause
            err = info.value
            while err is not None and not isinstance(err, NovaSonicNetworkBlocked):
                err = err.__cause__
            assert isinstance(err, NovaSonicNetworkBlocked)
    ''')
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--block-network")
    result.assert_outcomes(passed=1)


def test_disable_recording_switches_the_fixture_off(project: pytest.Pytester) -> None:
    project.makepyfile(test_off='''
        import os
        import pytest

        @pytest.mark.nova_cassette
        def test_off(nova_sonic):
            assert nova_sonic.mode == "disabled" and nova_sonic.env == {}
            assert os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") is None
            with pytest.raises(RuntimeError, match="disabled"):
                nova_sonic.endpoint
    ''')
    project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--disable-recording").assert_outcomes(passed=1)


def test_session_server_is_shared_by_the_tests_of_a_session(project: pytest.Pytester) -> None:
    project.makepyfile(test_session='''
        ENDPOINTS = []

        def test_one(nova_fake_server):
            ENDPOINTS.append(nova_fake_server.endpoint)
            assert nova_fake_server.info()["access_key_id"].startswith("AKIA")

        def test_two(nova_fake_server):
            assert ENDPOINTS == [nova_fake_server.endpoint]
    ''')
    project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider").assert_outcomes(passed=2)
