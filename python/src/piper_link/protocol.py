"""The agent protocol on WebSocket ``/v1/link`` as this SDK speaks it. The one description of the
wire format is the zod schemas of src/shared/protocol.ts and src/shared/calls.ts; these tables are
written from them, and ``tests/test_protocol_models.py`` checks they agree (message types, required
and optional fields, error codes) against a dump of the schemas made by the repository's TypeScript.

Frames are JSON objects. ``check_link_message`` validates a frame from the Link far enough for the
SDK to rely on the fields it reads; anything else is ignored as the TypeScript SDK does.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Tuple

PROTOCOL_VERSION = 1
"""The agent protocol version (src/shared/version.ts)."""

AGENT_SUBPROTOCOL = "piper-link.v1"
"""The WebSocket subprotocol of the agent channel."""

MAX_FRAME_BYTES = 64 * 1024
"""Largest frame the Link accepts, in bytes."""

MAX_RESOLVE_MANY = 32
"""Most variables one ``resolveMany`` may name."""

MessageFields = Tuple[Tuple[str, ...], Tuple[str, ...]]
"""(required fields, optional fields) of one message type."""

AGENT_MESSAGES: Mapping[str, MessageFields] = {
    "hello": (("type", "id", "protocol", "agent"), ("sdk", "actingFor")),
    "resolve": (("type", "id", "variable"), ("reason", "wait", "timeoutMs")),
    "resolveMany": (("type", "id", "variables"), ("reason", "wait", "timeoutMs")),
    "call": (
        ("type", "id", "url", "auth"),
        ("method", "headers", "body", "reason", "wait", "askIfRefused", "approvalTimeoutMs", "timeoutMs"),
    ),
    "cancel": (("type", "id"), ()),
    "grants": (("type", "id"), ()),
    "validate": (("type", "id", "variable"), ()),
    "metadata": (("type", "id", "variable"), ()),
    "permissionCheck": (("type", "id", "variable"), ()),
    "requestAccess": (("type", "id", "variable", "url"), ("method", "reason")),
}
"""Every agent -> Link message (protocol.ts ``AgentMessageSchema``)."""

LINK_MESSAGES: Mapping[str, MessageFields] = {
    "welcome": (("type", "id", "instanceId", "link", "authority"), ()),
    "context": (("type", "instanceId", "state"), ("reason",)),
    "pending": (("type", "id", "requestId", "approveIn"), ("requestIds", "batchId")),
    "secret": (("type", "id", "variable", "value", "grantId", "expiresAt"), ()),
    "secrets": (("type", "id", "results"), ()),
    "error": (("type", "id", "code", "message", "retryable"), ()),
    "call.head": (("type", "id", "status", "statusText", "headers", "redacted", "url"), ()),
    "call.chunk": (("type", "id", "data"), ()),
    "call.end": (("type", "id", "bytes", "redacted", "durationMs"), ()),
    "grants.list": (("type", "id", "grants"), ()),
    "validate.result": (("type", "id", "variable", "normalized", "wellFormed", "problem", "mapped", "secretName"), ()),
    "metadata.result": (("type", "id", "variable", "secret"), ()),
    "permissionCheck.result": (("type", "id", "variable", "granted", "grant"), ()),
    "access": (("type", "id", "variable", "state", "requestId"), ()),
}
"""Every Link -> agent message (protocol.ts ``LinkMessageSchema``)."""

CALL_AUTH_STYLES: Tuple[str, ...] = ("bearer", "basic", "header", "query", "jsonField", "formField")
"""How a call injects a secret (calls.ts ``CallAuthSchema``)."""

ERROR_CODES: Tuple[str, ...] = (
    "denied", "timeout", "grant_needed", "not_logged_in", "authority_unavailable", "bad_request", "rate_limited",
    "unknown_type", "malformed_frame", "hello_required", "unsupported_protocol", "not_implemented", "requester_gone",
    "policy_violation", "destination_not_allowed", "upstream_unavailable", "response_too_large", "secret_not_found",
    "conflict", "keychain_unavailable", "keychain_locked", "forbidden_origin", "forbidden_host", "not_found",
    "method_not_allowed", "too_many_connections", "foreign_user", "unauthorized", "locked", "presence_required",
    "presence_failed", "already_running", "not_running", "internal_error", "service_failed",
    "storage_unavailable",
)  # fmt: skip
"""The stable error codes (src/shared/errors.ts ``ERROR_CODES``)."""

Frame = Dict[str, Any]
"""A decoded JSON frame."""


def check_link_message(frame: object) -> Optional[Frame]:
    """``frame`` when it is a Link message this SDK knows with its required fields, else None."""
    if not isinstance(frame, dict):
        return None
    kind = frame.get("type")
    if not isinstance(kind, str) or kind not in LINK_MESSAGES:
        return None
    required, _ = LINK_MESSAGES[kind]
    if any(name not in frame for name in required):
        return None
    return frame


def normalize_variable(name: str) -> str:
    """The Link's lookup form of a variable name (protocol.ts ``normalizeVariable``):
    runs of ``-`` and whitespace become ``_``, other non-word characters are dropped, repeated ``_``
    collapse, lower case. ASCII word characters only, as JavaScript's ``\\w``.
    """
    s = re.sub(r"[-\s]+", "_", name.strip())
    s = re.sub(r"[^A-Za-z0-9_]", "", s)
    s = re.sub(r"_+", "_", s)
    return s.lower()
