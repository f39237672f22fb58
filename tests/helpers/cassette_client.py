"""Re-export: the cassette re-enacting client lives in ``tools.sdk_driver.reenact`` (the replay
benchmark uses it too)."""

from tools.sdk_driver.reenact import StreamRun, replay_cassette, run_stream

__all__ = ["StreamRun", "replay_cassette", "run_stream"]
