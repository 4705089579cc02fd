"""Discovery, environment names, the provider's rules, the mock and the pyper-sdk bridge (no Link)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List

import pytest

from piper_link import (
    DEFAULT_LINK_URL,
    Discovered,
    PiperAuthError,
    PiperBatchError,
    PiperConfigError,
    PiperError,
    PiperForbiddenError,
    PiperGrantNeededError,
    PiperLinkNeededError,
    SecretProvider,
    SecretResult,
    discover_link_url,
    env_name_for,
)
from piper_link.protocol import normalize_variable
from piper_link.pyper import PiperClient as PyperClient, PyperAcquisitionError
from piper_link.testing import REDACTION_MARK, MockPiperLink, RecordedCall


def _write_discovery(tmp: str, folder: str, url: str, pid: int) -> Dict[str, str]:
    os.makedirs(os.path.join(tmp, folder), exist_ok=True)
    with open(os.path.join(tmp, folder, "link.json"), "w", encoding="utf-8") as f:
        json.dump({"url": url, "pid": pid, "version": "0.1.0", "startedAt": "x"}, f)
    return {"HOME": tmp, "XDG_RUNTIME_DIR": tmp}


def test_discovery_order(tmp_path: "os.PathLike[str]") -> None:
    tmp = str(tmp_path)
    env = _write_discovery(tmp, "piper-link", "ws://127.0.0.1:4242/v1/link", os.getpid())
    assert discover_link_url("ws://127.0.0.1:1/v1/link", {**env, "PIPER_LINK_URL": "ws://x"}).source == "option"
    assert discover_link_url(None, {**env, "PIPER_LINK_URL": "ws://127.0.0.1:5/v1/link"}).url == "ws://127.0.0.1:5/v1/link"
    assert discover_link_url(None, env).url == "ws://127.0.0.1:4242/v1/link"
    # Another profile's file, named by PIPER_LINK_PROFILE.
    _write_discovery(tmp, "piper-link-work", "ws://127.0.0.1:4343/v1/link", os.getpid())
    assert discover_link_url(None, {**env, "PIPER_LINK_PROFILE": "work"}).url == "ws://127.0.0.1:4343/v1/link"
    # Another profile whose Link is not running (or a name that is no profile) is not the default
    # profile's Link on the default port.
    assert discover_link_url(None, {**env, "PIPER_LINK_PROFILE": "../etc"}).source == "none"
    assert discover_link_url(None, {**env, "PIPER_LINK_PROFILE": "other"}) == Discovered(None, "none")


def test_discovery_ignores_a_file_whose_process_is_gone_or_whose_url_is_not_loopback(tmp_path: "os.PathLike[str]") -> None:
    tmp = str(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = _write_discovery(tmp, "piper-link", "ws://127.0.0.1:4242/v1/link", gone.pid)
    assert discover_link_url(None, env) .url == DEFAULT_LINK_URL
    env = _write_discovery(tmp, "piper-link", "ws://evil.example:80/v1/link", os.getpid())
    assert discover_link_url(None, env).source == "default"


@pytest.mark.parametrize(
    ("variable", "prefix", "expected"),
    [("  OpenAI-API-Key ", "", "OPENAI_API_KEY"), ("openai-api key", "APP_", "APP_OPENAI_API_KEY"), ("a..b__c", "", "A_B_C"), ("straße", "", "STRASSE")],
)
def test_env_names_follow_pyper_sdk(variable: str, prefix: str, expected: str) -> None:
    assert env_name_for(variable, prefix) == expected


def test_env_map_wins_as_is() -> None:
    assert env_name_for(" key ", "P_", {"key": "my_exact"}) == "my_exact"


def test_normalize_variable_matches_the_links() -> None:
    assert normalize_variable("  OpenAI-API key!! ") == "openai_api_key"
    assert normalize_variable("!!!") == ""


class _Source:
    def __init__(self) -> None:
        self.answers: List[object] = []
        self.asked = 0

    def get_secret(self, variable: str, *, reason: object = None) -> SecretResult:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, PiperError):
            raise answer
        return SecretResult(variable=variable, value=str(answer), source="piper")


def test_provider_refreshes_on_miss_expiry_and_invalidate() -> None:
    now = [0.0]
    source = _Source()
    source.answers = ["v1", "v2", "v3"]
    provider = SecretProvider(source, ttl_seconds=10, clock=lambda: now[0])
    assert provider.get("K") == "v1" and provider.get("K") == "v1" and source.asked == 1
    now[0] = 10.0
    assert provider.get("K") == "v2"
    provider.invalidate("K")
    assert provider.get("K") == "v3" and source.asked == 3


def test_provider_serves_stale_only_for_retryable_request_level_failures() -> None:
    now = [0.0]
    source = _Source()
    source.answers = ["v1", PiperError("authority_unavailable", "down", retryable=True), PiperForbiddenError("K", "denied")]
    provider = SecretProvider(source, ttl_seconds=10, stale_grace_seconds=5, clock=lambda: now[0])
    assert provider.get("K") == "v1"
    now[0] = 12.0
    assert provider.get("K") == "v1"  # authority down: within the grace
    with pytest.raises(PiperForbiddenError):
        provider.get("K")  # a denial is never papered over
    source.answers = ["v2", PiperGrantNeededError("timeout", "K", None, "t")]
    assert provider.get("K") == "v2"
    now[0] = 30.0
    with pytest.raises(PiperGrantNeededError):
        provider.get("K")  # retryable, but not request-level: fail closed
    source.answers = ["v3", PiperError("rate_limited", "slow", retryable=True)]
    assert provider.get("K") == "v3"
    now[0] = 50.0
    with pytest.raises(PiperError):
        provider.get("K")  # past the grace


def test_mock_records_and_never_lets_a_value_out_through_call() -> None:
    def respond(call: RecordedCall) -> "tuple[int, Dict[str, str], str]":
        return 200, {"x-echo": "Bearer sk-mock"}, '{"echo": "sk-mock"}'

    mock = MockPiperLink(secrets={"OPENAI_API_KEY": "sk-mock"}, errors={"GITHUB_TOKEN": "denied", "LATE": "timeout"}, respond=respond)
    assert mock.get_secret("openai-api-key").value == "sk-mock"
    with pytest.raises(PiperForbiddenError):
        mock.get_secret("GITHUB_TOKEN")
    got = mock.get_secrets(["OPENAI_API_KEY", "GITHUB_TOKEN", "LATE", "NOPE"])
    assert set(got.resolved) == {"OPENAI_API_KEY"}
    assert {k: (e.code, e.retryable) for k, e in got.failures.items()} == {"GITHUB_TOKEN": ("denied", False), "LATE": ("timeout", True), "NOPE": ("secret_not_found", False)}
    with pytest.raises(PiperBatchError):
        mock.resolve_many(["OPENAI_API_KEY", "NOPE"])
    r = mock.call("https://api.example.com/v1?x=1", "post", bearer="OPENAI_API_KEY", header={"X-Org": "OPENAI_API_KEY"})
    assert r.redacted and "sk-mock" not in r.text and REDACTION_MARK in r.text and "sk-mock" not in r.headers["x-echo"]
    assert mock.calls[0].injections == {"bearer": ["OPENAI_API_KEY"], "header": ["OPENAI_API_KEY"]} and mock.calls[0].method == "POST"
    assert [q.kind for q in mock.requests] == ["get_secret", "get_secret", "get_secrets", "get_secrets"]
    assert mock.validate("OPENAI_API_KEY").mapped and not mock.validate("NOPE").mapped
    assert mock.permission_check("OPENAI_API_KEY").granted and not mock.permission_check("GITHUB_TOKEN").granted
    assert "sk-mock" not in repr(mock)


# pyper-sdk's scenarios, through the bridge: value, grant_needed, link_needed, auth_error, forbidden.
def _pyper(errors: Dict[str, str], env: Dict[str, str] | None = None, **options: object) -> PyperClient:
    mock = MockPiperLink(secrets={"OPENAI_API_KEY": "sk-pyper"}, errors=errors)
    return PyperClient("my-agent", source=mock, env=env or {}, **options)  # type: ignore[arg-type]


def test_pyper_value() -> None:
    info = _pyper({}).get_secret(" OPENAI_API_KEY ")
    assert info is not None
    assert set(info) == {"value", "source", "piper_credential_id", "piper_instance_id", "variable_name"}
    assert (info["value"], info["source"], info["variable_name"], info["piper_instance_id"]) == ("sk-pyper", "piper_raw_secret", "OPENAI_API_KEY", "inst_mock")


def test_pyper_grant_needed_then_env_fallback() -> None:
    with pytest.raises(PyperAcquisitionError) as caught:
        _pyper({"DB": "grant_needed"}).get_secret("DB")
    assert isinstance(caught.value.attempted_sources_summary["Piper"], PiperGrantNeededError)
    assert caught.value.attempted_sources_summary["EnvironmentVariable"] == "Environment variable 'DB' not set."
    info = _pyper({"DB": "grant_needed"}, raise_on_failure=False).get_secret("DB", raise_on_failure=False)
    assert info is not None and (info["value"], info["source"]) == (None, "piper_grant_needed")
    env_info = _pyper({"DB": "grant_needed"}, env={"APP_DB": "from-env"}, env_variable_prefix="APP_").get_secret("db")
    assert env_info == {"value": "from-env", "source": "environment_variable", "env_var_name_used": "APP_DB", "token_type": "DirectValue", "expires_in": None, "variable_name": "db"}


def test_pyper_link_needed() -> None:
    client = _pyper({"K": "link_not_running"})
    info = client.get_secret("K", raise_on_failure=False)
    assert info is not None and info["source"] == "piper_link_needed"
    assert isinstance(client.get_last_error_for_variable(" K "), PyperAcquisitionError)
    with pytest.raises(PyperAcquisitionError) as caught:
        _pyper({"K": "not_logged_in"}, fallback_to_env=False).get_secret("K")
    assert isinstance(caught.value.attempted_sources_summary["Piper"], PiperLinkNeededError)


def test_pyper_auth_error_and_forbidden() -> None:
    with pytest.raises(PyperAcquisitionError) as caught:
        _pyper({"K": "policy_violation"}).get_secret("K")
    assert type(caught.value.attempted_sources_summary["Piper"]) is PiperAuthError
    with pytest.raises(PyperAcquisitionError) as denied:
        _pyper({"K": "denied"}).get_secret("K")
    assert isinstance(denied.value.attempted_sources_summary["Piper"], PiperForbiddenError)


def test_pyper_input_errors() -> None:
    with pytest.raises(PiperConfigError):
        _pyper({}).get_secret("   ")
    info = _pyper({}).get_secret(None, raise_on_failure=False)  # type: ignore[arg-type]
    assert info is not None and info["source"] == "config_error_input_type"
