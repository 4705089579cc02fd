"""What the SDK returns. A value is never part of any ``repr`` (so it does not end up in logs by
accident), and nothing a call returns has a field that could hold one.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Tuple

from .errors import PiperError

SecretSource = Literal["piper", "environment_variable"]


@dataclass(frozen=True)
class SecretResult:
    """A secret's value and where it came from. ``grant_id`` / ``expires_at`` (ISO 8601, None: no end) from the Link only."""

    variable: str
    value: str = field(repr=False)
    source: SecretSource
    grant_id: Optional[str] = None
    expires_at: Optional[str] = None


@dataclass(frozen=True)
class SecretsResult:
    """``get_secrets``' partial results (SecFlow's ``resolve_many_partial``): values and failures by the names given."""

    resolved: Dict[str, SecretResult]
    failures: Dict[str, PiperError]

    @property
    def complete(self) -> bool:
        """True when every variable was resolved."""
        return not self.failures


@dataclass(frozen=True)
class Validation:
    """``validate``: is ``variable`` well formed, and which of the person's secrets is mapped to it."""

    variable: str
    normalized: str
    well_formed: bool
    problem: Optional[str]
    mapped: bool
    secret_name: Optional[str]


@dataclass(frozen=True)
class SecretMetadata:
    """``metadata``: the mapped secret's name, host list (None: no list of its own) and dates. Never the value."""

    variable: str
    name: str
    hosts: Optional[List[str]]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class GrantTerms:
    """A live grant's terms: binding (``process``, ``session``, ``program``, ``client``), scope, mode
    (``{"kind": "read"}`` or ``{"kind": "use", "destinations": [...]}``, None: not said), policy limits,
    and when it ends (None: until revoked or the process exits)."""

    grant_id: str
    secret_name: str
    binding: str
    scope: str
    mode: Optional[Dict[str, Any]]
    policy: Optional[Dict[str, Any]]
    expires_at: Optional[datetime]


@dataclass(frozen=True)
class PermissionCheck:
    """``permission_check``: whether this program holds a live grant for ``variable``, and its terms."""

    variable: str
    granted: bool
    grant: Optional[GrantTerms]


@dataclass(frozen=True)
class AgentGrant:
    """One live grant as ``list_grants`` gives it: the variable, its mode, and when it ends (None: no end)."""

    variable: str
    mode: Optional[Dict[str, Any]]
    expires_at: Optional[datetime]


def from_ms(ms: Optional[float]) -> Optional[datetime]:
    """A timestamp in ms since the epoch as an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class Headers(Mapping[str, str]):
    """A response's headers: case-insensitive, in order, repeated names kept (``get_list``). ``h[name]`` joins repeats with ``, ``."""

    def __init__(self, pairs: List[Tuple[str, str]]) -> None:
        self._pairs = [(k, v) for k, v in pairs]

    def get_list(self, name: str) -> List[str]:
        """Every value of ``name``, in order."""
        wanted = name.lower()
        return [v for k, v in self._pairs if k.lower() == wanted]

    def items_list(self) -> List[Tuple[str, str]]:
        """The pairs as received."""
        return list(self._pairs)

    def __getitem__(self, name: str) -> str:
        values = self.get_list(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        seen: Dict[str, None] = {}
        for k, _ in self._pairs:
            seen.setdefault(k.lower())
        return iter(seen)

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._pairs})

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


@dataclass(frozen=True)
class CallResponse:
    """The answer to a call the Link made for the agent (AgentSecrets' shape): status, headers and body
    as the upstream sent them with every echo of an injected value redacted; ``redacted`` says whether
    any was; ``duration_ms`` is the Link's time for the whole exchange."""

    status_code: int
    reason_phrase: str
    headers: Headers
    body: bytes
    redacted: bool
    duration_ms: float
    url: str

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300
