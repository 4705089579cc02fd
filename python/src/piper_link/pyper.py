"""A bridge for code written against pyper-sdk (``pyper_sdk.PiperClient``): change the import, keep
the code. ``get_secret`` returns pyper-sdk 0.7's dict and raises its classes (these are the SDK's
own, whose names match pyper-sdk's)::

    # from piper_sdk import PiperClient, PiperGrantNeededError, PiperLinkNeededError
    from piper_link.pyper import PiperClient, PiperGrantNeededError, PiperLinkNeededError

    piper = PiperClient(client_id="my-agent")
    info = piper.get_secret("OPENAI_API_KEY")
    info["value"], info["source"]   # "piper_raw_secret" or "environment_variable"

Returned dicts (pyper-sdk 0.7's keys):
- from Piper Link: ``value``, ``source: "piper_raw_secret"``, ``piper_credential_id`` (the grant),
  ``piper_instance_id``, ``variable_name``;
- from the environment: ``value``, ``source: "environment_variable"``, ``env_var_name_used``,
  ``token_type: "DirectValue"``, ``expires_in: None``, ``variable_name``;
- with ``raise_on_failure=False``: ``value: None``, ``source`` (``piper_grant_needed``,
  ``piper_link_needed``, ``config_error_runtime``, ``acquisition_failure``), ``variable_name``,
  ``error_object``.

Differences: the Link asks the person itself (no grant URL to visit; ``get_secret`` waits for the
approval unless ``wait=False``); codes are the Link's (``denied`` where pyper-sdk said
``permission_denied``); the Link's refusals by policy (``policy_violation``,
``destination_not_allowed``) are PiperAuthError here, as pyper-sdk's backend refusals were.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Protocol

from .client import PiperClient as _LinkClient
from .env import env_name_for
from .errors import (
    PiperAuthError,
    PiperConfigError,
    PiperError,
    PiperForbiddenError,
    PiperGrantNeededError,
    PiperLinkLockedError,
    PiperLinkNeededError,
    PiperSecretAcquisitionError,
)
from .models import SecretResult

__all__ = [
    "PiperAuthError",
    "PiperClient",
    "PiperConfigError",
    "PiperError",
    "PiperForbiddenError",
    "PiperGrantNeededError",
    "PiperLinkLockedError",
    "PiperLinkNeededError",
    "PiperSecretAcquisitionError",
]

_AUTH_CODES = frozenset({"policy_violation", "destination_not_allowed", "unauthorized"})


class _Source(Protocol):
    def get_secret(self, variable: str, *, reason: Optional[str] = None, wait: bool = True) -> SecretResult: ...

    def get_instance_id(self) -> str: ...


class PyperAcquisitionError(PiperSecretAcquisitionError):
    """pyper-sdk's PiperSecretAcquisitionError: ``variable_name`` and ``attempted_sources_summary``
    (``{"Piper": <the Link's error>, "EnvironmentVariable": "Environment variable 'X' not set."}``)."""

    def __init__(self, variable: str, summary: Dict[str, Any], cause: Optional[PiperError]) -> None:
        super().__init__(variable, {k: str(v) for k, v in summary.items()}, cause)
        self.variable_name = variable
        self.attempted_sources_summary = summary


def _pyper_error(err: PiperError) -> PiperError:
    """The Link's refusals by policy become PiperAuthError, as pyper-sdk's backend refusals were."""
    if err.code in _AUTH_CODES and not isinstance(err, PiperAuthError):
        return PiperAuthError(err.code, err.message, retryable=err.retryable)
    return err


class PiperClient:
    """pyper-sdk's ``PiperClient`` over Piper Link. Options kept: ``client_id``,
    ``piper_link_instance_id``, ``use_piper``, ``fallback_to_env``, ``env_variable_prefix``,
    ``env_variable_map``; pyper-sdk's URL and session options are accepted and ignored (the Link is
    found by discovery; ``link_url`` overrides it). ``source`` replaces the Link client (tests)."""

    def __init__(
        self,
        client_id: str,
        *,
        piper_link_instance_id: Optional[str] = None,
        use_piper: bool = True,
        fallback_to_env: bool = True,
        env_variable_prefix: str = "",
        env_variable_map: Optional[Mapping[str, str]] = None,
        link_url: Optional[str] = None,
        wait: bool = True,
        env: Optional[Mapping[str, str]] = None,
        source: Optional[_Source] = None,
        **_pyper_options: Any,
    ) -> None:
        import os

        self.client_id = client_id
        self.use_piper = use_piper
        self.fallback_to_env = fallback_to_env
        self.env_variable_prefix = env_variable_prefix
        self.env_variable_map = dict(env_variable_map or {})
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._wait = wait
        self._configured_instance_id = piper_link_instance_id
        self._source: _Source = source if source is not None else _LinkClient(client_id, link_url=link_url, fallback_to_env=False, env=self._env, instance_id=piper_link_instance_id)
        self._last_errors: Dict[str, PiperError] = {}

    def discover_local_instance_id(self, force_refresh: bool = False) -> Optional[str]:
        """The Link's instance ID, or None when it cannot be had."""
        if self._configured_instance_id:
            return self._configured_instance_id
        try:
            return self._source.get_instance_id() or None
        except PiperError:
            return None

    def get_last_error_for_variable(self, variable_name: str) -> Optional[PiperError]:
        """The error of the last failed ``get_secret`` for ``variable_name`` (stripped), as pyper-sdk keeps it."""
        return self._last_errors.get(variable_name.strip()) if isinstance(variable_name, str) else None

    def get_secret(self, variable_name: str, piper_link_instance_id_for_call: Optional[str] = None, fetch_raw_secret: bool = False, raise_on_failure: bool = True) -> Optional[Dict[str, Any]]:
        """pyper-sdk's ``get_secret`` (see the module docstring for the dicts)."""
        if not isinstance(variable_name, str):
            err: PiperError = PiperConfigError("invalid_variable", "variable_name must be a string, not None or other type.")
            if raise_on_failure:
                raise err
            return {"value": None, "source": "config_error_input_type", "variable_name": "INPUT_VALIDATION_NON_STRING_VAR_NAME", "error_object": err}
        name = variable_name.strip()
        if not name:
            err = PiperConfigError("invalid_variable", "variable_name cannot be empty or all whitespace after stripping.")
            if raise_on_failure:
                raise err
            return {"value": None, "source": "config_error_input_empty", "variable_name": name, "error_object": err}
        try:
            info = self._acquire(name)
        except PiperError as failure:
            self._last_errors[name] = failure
            if raise_on_failure:
                raise
            piper_part = failure.attempted_sources_summary.get("Piper") if isinstance(failure, PyperAcquisitionError) else failure
            source = (
                "piper_grant_needed"
                if isinstance(piper_part, PiperGrantNeededError)
                else "piper_link_needed"
                if isinstance(piper_part, PiperLinkNeededError)
                else "config_error_runtime"
                if isinstance(failure, PiperConfigError)
                else "acquisition_failure"
            )
            return {"value": None, "source": source, "variable_name": name, "error_object": failure}
        self._last_errors.pop(name, None)
        return info

    def _acquire(self, name: str) -> Dict[str, Any]:
        summary: Dict[str, Any] = {}
        piper_error: Optional[PiperError] = None
        if self.use_piper:
            try:
                got = self._source.get_secret(name, wait=self._wait)
                return {
                    "value": got.value,
                    "source": "piper_raw_secret",
                    "piper_credential_id": got.grant_id,
                    "piper_instance_id": self.discover_local_instance_id(),
                    "variable_name": name,
                }
            except PiperError as err:
                if err.code == "closed":
                    raise
                piper_error = _pyper_error(err)
                summary["Piper"] = piper_error
        if self.fallback_to_env:
            env_var = env_name_for(name, self.env_variable_prefix, self.env_variable_map)
            value = self._env.get(env_var)
            if value is not None:
                return {"value": value, "source": "environment_variable", "env_var_name_used": env_var, "token_type": "DirectValue", "expires_in": None, "variable_name": name}
            summary["EnvironmentVariable"] = f"Environment variable '{env_var}' not set."
        if not summary:
            summary["SDKInternal"] = "No acquisition methods were enabled or attempted due to client configuration."
        raise PyperAcquisitionError(name, summary, piper_error)

    def close(self) -> None:
        """Ends the Link connection (pyper-sdk had none to end)."""
        close = getattr(self._source, "close", None)
        if callable(close):
            close()
