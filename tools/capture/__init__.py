"""The capture proxy: record new cassettes from any client against the real service (or any upstream).

A client points at the proxy exactly as at the fake server (TLS + HTTP/2, a published CA, endpoint
and test keys). The proxy verifies the client's signatures, forwards every event through the
stock SDK client (re-signed with the upstream's credentials: real Bedrock and the boto3 chain by
default, or any endpoint + CA), relays the upstream's events back as they come, and records both
directions with times and audio positions into a cassette, written incrementally and crash-safe
(a SIGKILL leaves a file readable up to its last complete event), with secrets and voice kept
out by default.

=============  ==================================================================================
``proxy``      ``CaptureProxy`` (async context manager; the fields of ``FakeNovaSonic``)
``upstream``   ``Upstream``: where to forward, with which keys; one upstream stream per client stream
``relay``      one client stream relayed both ways: errors and faults passed on as the client
               would see them from the service
``recorder``   ``Recorder``: cassette + journal + live ``CaptureStats``, off the relay's hot path
``logs``       a logging filter that keeps keys and signatures out of any log, at any level
``cli``        ``nova-capture`` (progress line, ready file, env file, SIGTERM/SIGINT stop cleanly;
               ``--play OLD`` re-records a cassette by re-enacting its client side with
               ``tools.sdk_driver.reenact``, for a drift check with ``nova-cassette diff``)
=============  ==================================================================================

::

    from tools.capture import CaptureProxy
    async with CaptureProxy("out.jsonl", upstream=None, region="us-east-1") as proxy:
        ...  # proxy.endpoint, proxy.ca_file, proxy.env, proxy.info(), proxy.stats
"""

from .proxy import CaptureProxy
from .recorder import CaptureStats
from .upstream import Upstream, bedrock_endpoint

__all__ = ["CaptureProxy", "CaptureStats", "Upstream", "bedrock_endpoint"]
