"""intentflow: route a message to an intent, narrow the tools, run the function-calling loop.

The public API is re-exported here; everything else may move between releases.
"""

from intentflow.context import RunContext
from intentflow.errors import (
    ConfigurationError,
    FieldError,
    IntentflowError,
    InvalidToolArguments,
    InvalidToolJSON,
    RunError,
    StrictSchemaWarning,
    ToolCallFailed,
    ToolDefinitionError,
    ToolInputError,
    ToolNameError,
    TransientToolError,
)
from intentflow.messages import (
    TRANSCRIPT,
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)
from intentflow.toolsets import (
    ErrorAction,
    ErrorBudget,
    ErrorPolicy,
    Executor,
    OutcomeKind,
    RetryPolicy,
    StrictCompilation,
    Tool,
    ToolCallOutcome,
    ToolError,
    Toolset,
    compile_strict,
    tool,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "TRANSCRIPT",
    "AssistantMessage",
    "ConfigurationError",
    "ErrorAction",
    "ErrorBudget",
    "ErrorPolicy",
    "Executor",
    "FieldError",
    "IntentflowError",
    "InvalidToolArguments",
    "InvalidToolJSON",
    "Message",
    "OutcomeKind",
    "RetryPolicy",
    "RunContext",
    "RunError",
    "StrictCompilation",
    "StrictSchemaWarning",
    "SystemMessage",
    "Tool",
    "ToolCall",
    "ToolCallFailed",
    "ToolCallOutcome",
    "ToolDefinitionError",
    "ToolError",
    "ToolInputError",
    "ToolMessage",
    "ToolNameError",
    "Toolset",
    "TransientToolError",
    "Usage",
    "UserMessage",
    "__version__",
    "compile_strict",
    "tool",
]
