"""The SDK's errors. They mirror pyper-sdk's classes (so code moved from it recognises them) and the
TypeScript SDK's codes and sentences (packages/sdk/src/errors.ts), so both SDKs mean the same thing::

    PiperError
    ├─ PiperConfigError
    │  └─ PiperLinkNeededError        Link not running, not signed in
    │     └─ PiperLinkLockedError     the Link is locked (retry later)
    ├─ PiperAuthError
    │  ├─ PiperGrantNeededError       no grant (yet): pending, not approved in time
    │  └─ PiperForbiddenError         the person denied it
    ├─ PiperSecretAcquisitionError    every configured source failed (with the per-source summary)
    └─ PiperBatchError                resolve_many: some variables could not be had

Every error has a stable ``code`` (the agent protocol's, src/shared/errors.ts, or one of the SDK's:
``link_not_running``, ``closed``, ``aborted``, ``invalid_client_id``, ``invalid_variable``,
``no_sources``, ``secret_unavailable``, ``batch_incomplete``), ``retryable`` and a sentence that says
what to do.
"""

from __future__ import annotations

from typing import Mapping, Optional

LINK_NOT_RUNNING = "Piper Link is not running. Start it with `npm start` (or `piper-link start`) or open the app."
"""The sentence for ``link_not_running`` (the TypeScript SDK's, word for word)."""

NOT_SIGNED_IN_MESSAGE = "Piper Link is running but nobody is signed in. Open Piper Link and sign in."
"""The Link's sentence for ``not_logged_in`` (src/shared/errors.ts)."""

LOCKED_MESSAGE = "Piper Link is locked. Ask the person to unlock it (its window, or `piper-link unlock` at a terminal), then try again."
"""The Link's sentence for ``locked`` (src/shared/errors.ts)."""

RETRYABLE_CODES = frozenset(
    {"authority_unavailable", "rate_limited", "timeout", "keychain_locked", "keychain_unavailable", "upstream_unavailable", "locked"}
)
"""Codes an agent may retry after a while without any change on its side (src/shared/errors.ts)."""


class PiperError(Exception):
    """Every SDK failure. ``code`` is stable; ``retryable`` says whether trying again later may help."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable

    @property
    def error_code(self) -> str:
        """pyper-sdk's name for ``code``."""
        return self.code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class PiperConfigError(PiperError):
    """Bad options or arguments (``invalid_client_id``, ``invalid_variable``, ``no_sources``), or the Link cannot be used."""


class PiperLinkNeededError(PiperConfigError):
    """The Link did not answer (``link_not_running``) or nobody is signed in (``not_logged_in``)."""


class PiperLinkLockedError(PiperLinkNeededError):
    """The Link runs but is locked: nothing is served until the person unlocks it. Retry later."""

    def __init__(self, message: str = LOCKED_MESSAGE) -> None:
        super().__init__("locked", message, retryable=True)


class PiperAuthError(PiperError):
    """The person's decision stands between the agent and the secret."""

    status_code: Optional[int] = None
    """pyper-sdk's HTTP status; the Link's protocol has none, so always None."""


class PiperGrantNeededError(PiperAuthError):
    """No grant: ``grant_needed`` (``wait=False``; ``request_id`` names the pending request) or ``timeout``."""

    def __init__(self, code: str, variable: str, request_id: Optional[str], message: str) -> None:
        super().__init__(code, message, retryable=True)
        self.variable = variable
        self.request_id = request_id


class PiperForbiddenError(PiperAuthError):
    """The person denied the request (``denied``). Do not retry in a loop."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__("denied", message)
        self.variable = variable


class PiperSecretAcquisitionError(PiperError):
    """Every enabled source failed (``secret_unavailable``): ``attempts`` says what each one said."""

    def __init__(self, variable: str, attempts: Mapping[str, str], cause: Optional[BaseException]) -> None:
        lines = "\n".join(f"  - {source}: {what}" for source, what in attempts.items())
        super().__init__(
            "secret_unavailable",
            f"Could not get {variable} from any source:\n{lines}",
            retryable=isinstance(cause, PiperError) and cause.retryable,
        )
        self.variable = variable
        self.attempts = dict(attempts)
        self.__cause__ = cause


class PiperBatchError(PiperError):
    """``resolve_many`` could not get every variable (``batch_incomplete``); ``failures`` has each one's error."""

    def __init__(self, failures: Mapping[str, PiperError]) -> None:
        lines = "\n".join(f"  - {name}: {err.code}: {err.message.splitlines()[0]}" for name, err in failures.items())
        super().__init__(
            "batch_incomplete",
            f"Could not get every secret asked for (none is returned):\n{lines}",
            retryable=all(err.retryable for err in failures.values()),
        )
        self.failures = dict(failures)


def error_for(variable: str, code: str, message: str, retryable: bool, request_id: Optional[str] = None) -> PiperError:
    """The SDK error for the Link's ``error`` frame about ``variable`` (packages/sdk/src/client.ts ``errorFor``)."""
    if code == "denied":
        return PiperForbiddenError(variable, f"The request for {variable} was denied in Piper Link.")
    if code == "timeout":
        return PiperGrantNeededError("timeout", variable, request_id, f"Nobody approved {variable} in Piper Link in time. Approve it there and try again.")
    if code == "grant_needed":
        return PiperGrantNeededError("grant_needed", variable, request_id, f"{variable} needs approval in Piper Link.")
    if code == "not_logged_in":
        return PiperLinkNeededError("not_logged_in", message)
    if code == "locked":
        return PiperLinkLockedError(message)
    return PiperError(code, message, retryable=retryable)


def call_error_for(url: str, code: str, message: str, retryable: bool) -> PiperError:
    """The SDK error for an ``error`` frame answering a call (the TypeScript SDK's ``fetch``)."""
    if code == "not_logged_in":
        return PiperLinkNeededError("not_logged_in", message)
    if code == "locked":
        return PiperLinkLockedError(message)
    if code == "denied":
        return PiperForbiddenError(url, message)
    return PiperError(code, message, retryable=retryable)
