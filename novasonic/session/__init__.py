"""``novasonic.session``: a framework-agnostic async Nova Sonic session over the stock SDK client.

One ``NovaSonicSession`` is one conversation. Underneath it runs one
``InvokeModelWithBidirectionalStream`` at a time (the stock ``aws_sdk_bedrock_runtime`` client on
the CRT HTTP/2 transport, ``novasonic.transport``) and replaces it when needed — before the
8-minute limit or credential expiry (*recycle*), or after a retryable error (*restart*) — carrying
the conversation over as chat history. The caller sees one continuous session.

Quick start::

    from novasonic.session import NovaSonicSession, SessionOptions, ToolDefinition
    from novasonic.session import AudioChunk, ToolCall, BargeIn, TurnEnded, Closed

    weather = ToolDefinition("get_weather", "Weather for a city",
                             {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"]})
    session = NovaSonicSession(SessionOptions(
        model_id="amazon.nova-2-sonic-v1:0", voice="tiffany",
        instructions="You are a friendly assistant.", tools=(weather,),
    ))
    await session.start(history=[("user", "Hi, I'm Ann."), ("assistant", "Hello Ann!")])

    async def mic():                                   # any rate / channel count
        async for pcm in microphone_48k_stereo():
            session.push_audio(pcm, sample_rate=48000, num_channels=2)

    async for ev in session.events():
        match ev:
            case AudioChunk():  speaker.play(ev.pcm, ev.sample_rate)
            case BargeIn():     speaker.flush()
            case ToolCall():    await session.send_tool_result(ev.tool_use_id, {"temp_c": 21})
            case TurnEnded():   print(ev.turn.user_text, "->", ev.turn.assistant_text)
            case Closed():      break
    await session.aclose()

Against the fake server: ``SessionOptions(endpoint=fake.endpoint, ca_file=fake.ca_file,
region=fake.region, credentials=StaticCredentials(fake.access_key_id, fake.secret_access_key))``.

Public API
----------
``NovaSonicSession(options: SessionOptions | None = None, *, clock: Clock | None = None, **overrides)``
    ``overrides`` are ``SessionOptions`` fields applied on top of ``options``.

    ``await start(history=())``
        Open the first stream: ``sessionStart`` (inference options and turn detection in the
        model's shape), ``promptStart`` (voice, tools, tool choice), the SYSTEM prompt, the chat
        history (``novasonic.builder.prepare_history``: first USER, alternating, limits), then the
        user AUDIO block. ``history`` empty keeps what ``update_history`` set before ``start``.
        Returns once the service accepted the stream. Retryable failures (and a stream that does
        not open within ``RestartPolicy.open_timeout_s``) are
        retried per ``RestartPolicy``; others raise (``ProtocolViolation`` for input the service
        would reject, e.g. a bad tool schema, the SDK's exception for an HTTP error).
    ``push_audio(audio, sample_rate=16000, num_channels=1)``  (not async)
        ``audio``: 16-bit little-endian interleaved PCM bytes, or any object with ``data``,
        ``sample_rate``, ``num_channels`` (``livekit.rtc.AudioFrame``; then the keywords are
        ignored). Resampled to 16 kHz mono with ``livekit.rtc.AudioResampler`` and sent in 32 ms
        (1024-byte) frames, never inside an open TEXT/TOOL block. Audio pushed while no stream
        can take it (before ``start``, during a recycle or restart) is buffered, up to
        ``max_buffered_audio_ms`` (oldest dropped beyond; the same bound holds when a producer
        pushes faster than the stream sends, so memory stays bounded). Raises ``SessionClosedError`` after close.
    ``await send_text(text)``
        Interactive USER text (Nova 2+; ``UnsupportedInput`` on Nova Sonic 1, where typed text does
        not start a response). Returns once sent. The text block is sent atomically.
    ``await send_tool_result(tool_use_id, result)``
        The result of a ``ToolCall`` (anything ``novasonic.builder.encode_tool_result`` takes: a
        dict, a JSON-object string, other values wrapped as ``{"result": ...}``, an exception as
        ``{"error": ...}``). Returns once sent. If the call's stream has been replaced meanwhile
        (recycle, restart), the result is delivered on the new stream as interactive text
        (Nova 2+), never on the old stream after its ``sessionEnd``; on Nova Sonic 1 that raises
        ``ToolResultUndeliverable``. An id the model never sent raises ``ProtocolViolation``.
    ``await update_instructions(text)``, ``await update_tools(tools, tool_choice=...)``,
    ``await update_history(history)``, ``await update_options(**fields)``
        Tools and the SYSTEM prompt can only be declared at stream start, so each update recycles
        the stream (at the next quiet point, within ``RecyclePolicy.update_max_wait_s``). Calls
        within ``coalesce_s`` share one recycle. Returns once the new stream is open.
        ``update_history`` replaces the conversation carried into the next stream. The start
        block the update leads to is checked by the rules first: an update the service would
        refuse (e.g. a tool schema with ``additionalProperties``) raises ``ProtocolViolation``
        from the call and changes nothing; the session goes on.
    ``await recycle()``
        Recycle now (at the next quiet point, bounded like updates).
    ``interrupt()``
        No-op: Nova Sonic has no client-initiated interruption; barge-in is detected by the
        service from the user's audio (``BargeIn`` events).
    ``events() -> AsyncIterator[SessionEvent]``
        Every event from now on, ending after ``Closed``. Several iterators may run at once.
    ``on(callback) -> unsubscribe``
        ``callback(event)`` (sync) for every event.
    ``await aclose()``
        Graceful close: pending text/tool results are sent, then audio ``contentEnd``,
        ``promptEnd``, ``sessionEnd``, input closed; the output is read to its end (bounded);
        every task is finished and every pending call answered. Idempotent.
    ``await wait_closed()``, ``async with session:`` (``start()`` / ``aclose()``).
    Properties: ``options``, ``state`` (``SessionState``), ``stream_index``, ``history``
    (the conversation as it would be carried now), ``turns``, ``usage`` (session total),
    ``pending_tool_calls``, ``buffered_audio_ms``, ``dropped_audio_bytes``, ``closed``, ``error``.

    ``send_text``/``send_tool_result``/``update_*`` before ``start()`` raise
    ``SessionNotStartedError`` (``update_*`` before start just change the options); every
    method is called from the event loop's thread.

Events (``novasonic.session.events``), all frozen dataclasses with ``stream_index``:
    output ``ServiceEvent(event)``; turns ``TurnStarted``, ``UserSpeechStarted``,
    ``UserSpeechEnded``, ``UserTranscript``, ``GenerationStarted``, ``AssistantText``,
    ``AudioChunk`` (``pcm``, ``sample_rate``), ``AudioEnded``, ``ToolCall``, ``BargeIn``,
    ``Usage``, ``TurnEnded``; lifecycle ``StreamOpened(reason)``,
    ``Restarting(error, attempt, max_attempts, delay_s)``, ``Recycling(reason, forced)`` (the old
    stream stops taking input), ``Recycled(reason, forced)`` (the new stream is open),
    ``SessionError(error, recoverable)``, ``Closed(error)``.

Options (``novasonic.session.options``): ``SessionOptions`` (model_id, voice, instructions,
tools, tool_choice, temperature, top_p, max_tokens, endpointing, output_sample_rate,
history_limits, region, endpoint, ca_file, credentials, frame_ms, max_buffered_audio_ms,
recycle, restart), ``ToolDefinition(name, description, parameters)``, ``RecyclePolicy``,
``RestartPolicy``. Credentials (``novasonic.session.credentials``): ``Credentials``,
``CredentialsProvider`` protocol, ``StaticCredentials``, ``CachedCredentials``,
``Boto3Credentials`` (the default). Clock (``novasonic.session.clock``): ``Clock`` protocol,
``SystemClock`` (default), ``ManualClock``.

Lifecycle decisions (each fixes an upstream defect of client-behaviours.md, each has a test):

- One writer task per stream consumes one session outbox; every TEXT/TOOL block is one item
  sent as a whole, so audio never lands inside an open text block and tool results never
  interleave a text block (#6720, tool results bypassing ``_text_block_lock``).
- Before a restart the old stream's writer and reader are cancelled and awaited; only then is
  the new stream opened, so there is never a second writer (#6793, stale writer after restart).
- Recycle stops the old stream taking input *before* queuing its close block; whatever arrives
  afterwards (audio, text, tool results) waits in the outbox for the new stream. Nothing is ever
  sent after ``sessionEnd`` (LiveKit drains tool results into the old stream after it).
- Recycle waits for a quiet point, not for an assistant END_TURN: a silent user is quiet, and a
  deadline forces the recycle anyway (sample-serverless-nova-sonic-chat#7, LiveKit's timer).
- Every event the session sends first goes through ``novasonic.rules.InputMachine`` (the same
  rules as the fake server), so input the service would reject fails fast with its text.
- Nothing is fire-and-forget: the session owns every task it starts and ``aclose`` ends them
  (PR #7052). An ``aclose`` cancelled by its caller (``wait_for(aclose(), t)``) closes hard
  instead of leaving the session CLOSING; a later ``aclose``/``wait_closed`` returns.
- When a stream replaces another (restart, recycle) and the conversation ends with user input
  that got no answer (speech transcribed or text typed, the answer cut off before it began), that
  last USER message is sent to the new stream as interactive text instead of being carried as
  history, which the model does not answer (Nova 2+, no tool result owed; history passed to
  ``start``/``update_history`` is never re-sent). LiveKit and Pipecat do the same.
- The quiet point a recycle waits for also requires no speech in the user's own pushed audio
  for ``quiet_s`` (``novasonic.audio.VAD_THRESHOLD_RMS``): the service reports speech only after
  detecting it, so an utterance's start could otherwise go to the old stream.
- ``update_options(frame_ms=...)`` changes the frame size in place (no short frame mid-stream,
  resampler state kept).
"""

from .clock import Clock, ManualClock, SystemClock
from .credentials import (
    Boto3Credentials,
    CachedCredentials,
    Credentials,
    CredentialsError,
    CredentialsProvider,
    StaticCredentials,
)
from .errors import (
    RestartsExhausted,
    SessionClosedError,
    SessionNotStartedError,
    StreamBroken,
    ToolResultUndeliverable,
    UnsupportedInput,
    is_retryable,
)
from .events import (
    AssistantText,
    AudioChunk,
    AudioEnded,
    BargeIn,
    Closed,
    GenerationStarted,
    Recycled,
    Recycling,
    Restarting,
    ServiceEvent,
    SessionError,
    SessionEvent,
    StreamOpened,
    ToolCall,
    TurnEnded,
    TurnStarted,
    Usage,
    UserSpeechEnded,
    UserSpeechStarted,
    UserTranscript,
)
from .options import RecyclePolicy, RestartPolicy, SessionOptions, ToolDefinition
from .session import NovaSonicSession, SessionState

__all__ = [
    "NovaSonicSession",
    "SessionState",
    "SessionOptions",
    "ToolDefinition",
    "RecyclePolicy",
    "RestartPolicy",
    "Clock",
    "SystemClock",
    "ManualClock",
    "Credentials",
    "CredentialsProvider",
    "CredentialsError",
    "StaticCredentials",
    "CachedCredentials",
    "Boto3Credentials",
    "SessionClosedError",
    "SessionNotStartedError",
    "StreamBroken",
    "RestartsExhausted",
    "ToolResultUndeliverable",
    "UnsupportedInput",
    "is_retryable",
    "SessionEvent",
    "ServiceEvent",
    "TurnStarted",
    "UserSpeechStarted",
    "UserSpeechEnded",
    "UserTranscript",
    "GenerationStarted",
    "AssistantText",
    "AudioChunk",
    "AudioEnded",
    "ToolCall",
    "BargeIn",
    "Usage",
    "TurnEnded",
    "StreamOpened",
    "Restarting",
    "Recycling",
    "Recycled",
    "SessionError",
    "Closed",
]
