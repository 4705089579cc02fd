"""``MockPiperLink``: a test double for agent developers' unit tests, with ``PiperClient``'s methods
and no Link. It records every request (``requests``) and every call (``calls``: method, URL, which
secret went where — names only), and like the Link it never lets a value out through ``call``:
an answer that echoes a value comes back redacted, with ``redacted`` True (AgentSecrets'
``MockAgentSecrets`` idea). ``get_secret`` gives values, since that is what it is for.

    mock = MockPiperLink(secrets={"OPENAI_API_KEY": "sk-test"}, errors={"GITHUB_TOKEN": "denied"})
    assert mock.get_secret("OPENAI_API_KEY").value == "sk-test"
    mock.call("https://api.example.com/v1", bearer="OPENAI_API_KEY")
    assert mock.calls[0].injections == {"bearer": ["OPENAI_API_KEY"]}

Failures are those of a client with ``fallback_to_env=False``: ``errors`` maps a variable to a code
(``denied`` -> PiperForbiddenError, ``grant_needed``/``timeout`` -> PiperGrantNeededError,
``link_not_running``/``not_logged_in`` -> PiperLinkNeededError, ``locked``, or any other code ->
PiperError); a variable in neither map fails with ``secret_not_found``.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import LINK_NOT_RUNNING, PiperBatchError, PiperError, PiperLinkNeededError, RETRYABLE_CODES, error_for
from .models import CallResponse, GrantTerms, Headers, PermissionCheck, SecretMetadata, SecretResult, SecretsResult, Validation
from .protocol import normalize_variable

REDACTION_MARK = "[REDACTED by Piper Link]"
"""What the Link writes in place of every echo of an injected value (src/shared/calls.ts)."""


@dataclass(frozen=True)
class RecordedRequest:
    """A request for values or a check: ``kind`` (``get_secret``, ``get_secrets``, ``validate``…), the variables and the reason."""

    kind: str
    variables: Tuple[str, ...]
    reason: Optional[str]


@dataclass(frozen=True)
class RecordedCall:
    """A call as the mock received it: never a value, only which secret names went where."""

    method: str
    url: str
    injections: Dict[str, List[str]]
    headers: Dict[str, str]
    body: Optional[bytes]


MockAnswer = Tuple[int, Mapping[str, str], Union[str, bytes]]
"""(status, headers, body) a ``respond`` function gives for a call."""


@dataclass
class MockPiperLink:
    """See the module docstring. ``respond(call)`` answers calls (default: 200, empty body)."""

    secrets: Dict[str, str] = field(default_factory=dict, repr=False)
    errors: Dict[str, str] = field(default_factory=dict)
    respond: Optional[Callable[[RecordedCall], MockAnswer]] = None
    instance_id: str = "inst_mock"
    requests: List[RecordedRequest] = field(default_factory=list)
    calls: List[RecordedCall] = field(default_factory=list)

    def _lookup(self, variable: str) -> Union[SecretResult, PiperError]:
        if variable in self.errors:
            code = self.errors[variable]
            if code == "link_not_running":
                return PiperLinkNeededError(code, LINK_NOT_RUNNING)
            return error_for(variable, code, f"{variable}: {code} (MockPiperLink).", code in RETRYABLE_CODES)
        wanted = normalize_variable(variable)
        for name, value in self.secrets.items():
            if normalize_variable(name) == wanted:
                return SecretResult(variable=variable, value=value, source="piper", grant_id=f"grant_mock_{wanted}", expires_at=None)
        return PiperError("secret_not_found", f"There is no secret named {variable.upper()} in MockPiperLink.")

    def get_instance_id(self) -> str:
        """The mock's instance ID."""
        return self.instance_id

    def get_secret(self, variable: str, *, reason: Optional[str] = None, wait: bool = True, timeout: Optional[float] = None, on_pending: Any = None) -> SecretResult:
        """The value from ``secrets``, or the error ``errors`` names (recorded)."""
        self.requests.append(RecordedRequest("get_secret", (variable,), reason))
        got = self._lookup(variable)
        if isinstance(got, PiperError):
            raise got
        return got

    def get_secrets(self, variables: Sequence[str], *, reason: Optional[str] = None, wait: bool = True, timeout: Optional[float] = None, on_pending: Any = None) -> SecretsResult:
        """Partial results, as ``PiperClient.get_secrets`` (recorded once)."""
        names = list(dict.fromkeys(variables))
        self.requests.append(RecordedRequest("get_secrets", tuple(names), reason))
        resolved: Dict[str, SecretResult] = {}
        failures: Dict[str, PiperError] = {}
        for name in names:
            got = self._lookup(name)
            if isinstance(got, PiperError):
                failures[name] = got
            else:
                resolved[name] = got
        return SecretsResult(resolved=resolved, failures=failures)

    def resolve_many(self, variables: Sequence[str], *, reason: Optional[str] = None, wait: bool = True, timeout: Optional[float] = None, on_pending: Any = None) -> Dict[str, SecretResult]:
        """All or nothing, as ``PiperClient.resolve_many``."""
        got = self.get_secrets(variables, reason=reason)
        if got.failures:
            raise PiperBatchError(got.failures)
        return got.resolved

    def validate(self, variable: str) -> Validation:
        """Mapped when ``secrets`` has the name (normalized)."""
        self.requests.append(RecordedRequest("validate", (variable,), None))
        normalized = normalize_variable(variable)
        name = next((n for n in self.secrets if normalize_variable(n) == normalized), None)
        problem = None if normalized else "The name has no letters or digits, so it cannot name a secret."
        return Validation(variable=variable, normalized=normalized, well_formed=problem is None, problem=problem, mapped=name is not None, secret_name=name)

    def metadata(self, variable: str) -> SecretMetadata:
        """The secret's name, no host list, and the mock's creation time; ``secret_not_found`` otherwise."""
        v = self.validate(variable)
        if v.secret_name is None:
            raise PiperError("secret_not_found", f"There is no secret named {variable.upper()} in MockPiperLink.")
        epoch = datetime(2025, 1, 1, tzinfo=timezone.utc)
        return SecretMetadata(variable=variable, name=v.secret_name, hosts=None, created_at=epoch, updated_at=epoch)

    def permission_check(self, variable: str) -> PermissionCheck:
        """Granted (read, until revoked) for every secret the mock holds and ``errors`` does not refuse."""
        self.requests.append(RecordedRequest("permission_check", (variable,), None))
        got = self._lookup(variable)
        if isinstance(got, PiperError):
            return PermissionCheck(variable=variable, granted=False, grant=None)
        terms = GrantTerms(grant_id=got.grant_id or "", secret_name=variable, binding="program", scope="until_revoked", mode={"kind": "read"}, policy=None, expires_at=None)
        return PermissionCheck(variable=variable, granted=True, grant=terms)

    def call(
        self,
        url: str,
        method: str = "GET",
        *,
        bearer: Optional[str] = None,
        basic: Optional[str] = None,
        header: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, str]] = None,
        body_field: Optional[Mapping[str, str]] = None,
        form_field: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: Union[str, bytes, None] = None,
        json: Any = None,
        **_: Any,
    ) -> CallResponse:
        """Records the call and answers with ``respond`` (default 200, empty), every value of an injected secret redacted."""
        injections: Dict[str, List[str]] = {}
        for style, name in (("bearer", bearer), ("basic", basic)):
            if name is not None:
                injections[style] = [name]
        for style, mapping in (("header", header), ("query", query), ("body_field", body_field), ("form_field", form_field)):
            if mapping:
                injections[style] = list(mapping.values())
        names = [n for group in injections.values() for n in group]
        for name in names:
            got = self._lookup(name)
            if isinstance(got, PiperError):
                raise got
        raw_body = _json.dumps(json).encode() if json is not None else body.encode() if isinstance(body, str) else body
        recorded = RecordedCall(method=method.upper(), url=url, injections=injections, headers=dict(headers or {}), body=raw_body)
        self.calls.append(recorded)
        status, answer_headers, answer_body = self.respond(recorded) if self.respond is not None else (200, {}, b"")
        data = answer_body.encode() if isinstance(answer_body, str) else answer_body
        pairs = [(k, v) for k, v in answer_headers.items()]
        redacted = False
        for name in names:
            value = self.secrets.get(name, "")
            if value and value.encode() in data:
                data, redacted = data.replace(value.encode(), REDACTION_MARK.encode()), True
            if value and any(value in v for _, v in pairs):
                pairs, redacted = [(k, v.replace(value, REDACTION_MARK)) for k, v in pairs], True
        return CallResponse(status_code=status, reason_phrase="", headers=Headers(pairs), body=data, redacted=redacted, duration_ms=0.0, url=url.split("?")[0])
