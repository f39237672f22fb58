"""Re-export of the Conversation driver, which moved to ``tools.sdk_driver`` (package code, so the
cassette generator can use it too; see that package's docstring). Existing tests keep importing
``tests.helpers.conversation``."""

from tools.sdk_driver.conversation import (
    DEFAULT_TIMEOUT,
    FRAME_MS,
    Block,
    Conversation,
    ConversationResult,
    ToolHandler,
    check_usage,
    shape,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "FRAME_MS",
    "Block",
    "Conversation",
    "ConversationResult",
    "ToolHandler",
    "shape",
    "check_usage",
]
