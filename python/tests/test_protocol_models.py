"""The Python models agree with the one protocol description (src/shared, dumped by test/protocol-fields.ts)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict

import pytest

from conftest import setting
from piper_link import protocol
from piper_link.errors import RETRYABLE_CODES


@pytest.fixture(scope="module")
def shared() -> Dict[str, Any]:
    repo = setting("PIPER_TEST_REPO")
    out = subprocess.run([setting("PIPER_TEST_NODE"), "--import", "tsx", os.path.join("test", "protocol-fields.ts")], cwd=repo, capture_output=True, text=True, check=True)
    data: Dict[str, Any] = json.loads(out.stdout)
    return data


def _table(messages: Dict[str, Any]) -> Dict[str, Any]:
    return {name: (sorted(f["required"]), sorted(f["optional"])) for name, f in messages.items()}


def test_message_types_and_fields_agree(shared: Dict[str, Any]) -> None:
    assert _table(shared["agentMessages"]) == {k: (sorted(r), sorted(o)) for k, (r, o) in protocol.AGENT_MESSAGES.items()}
    assert _table(shared["linkMessages"]) == {k: (sorted(r), sorted(o)) for k, (r, o) in protocol.LINK_MESSAGES.items()}


def test_constants_and_codes_agree(shared: Dict[str, Any]) -> None:
    assert shared["protocolVersion"] == protocol.PROTOCOL_VERSION
    assert shared["subprotocol"] == protocol.AGENT_SUBPROTOCOL
    assert shared["maxFrameBytes"] == protocol.MAX_FRAME_BYTES
    assert shared["maxResolveMany"] == protocol.MAX_RESOLVE_MANY
    assert shared["callAuthStyles"] == sorted(protocol.CALL_AUTH_STYLES)
    assert shared["errorCodes"] == list(protocol.ERROR_CODES)
    assert RETRYABLE_CODES <= set(protocol.ERROR_CODES)


def test_a_frame_missing_a_required_field_is_not_taken() -> None:
    assert protocol.check_link_message({"type": "secret", "id": "r-1", "variable": "X", "value": "v", "grantId": "g", "expiresAt": None}) is not None
    assert protocol.check_link_message({"type": "secret", "id": "r-1", "variable": "X", "grantId": "g", "expiresAt": None}) is None
    assert protocol.check_link_message({"type": "made-up", "id": 1}) is None
    assert protocol.check_link_message(["not", "an", "object"]) is None
