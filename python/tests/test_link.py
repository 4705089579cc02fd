"""The SDK against a real Link (conftest.py): approvals typed at a real prompt, calls to a real
local HTTPS upstream."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
from typing import Any, Dict, List

import pytest

from conftest import Link, setting, upstream_get
from piper_link import (
    AsyncPiperClient,
    PiperBatchError,
    PiperClient,
    PiperError,
    PiperForbiddenError,
    PiperGrantNeededError,
    PiperLinkNeededError,
    PiperSecretAcquisitionError,
    SecretProvider,
)
from piper_link.errors import LINK_NOT_RUNNING

DEAD_LINK = "ws://127.0.0.1:9/v1/link"


def test_get_secret_waits_for_the_approval_then_a_grant_answers_at_once(link: Link, link_env: Dict[str, str]) -> None:
    pending: List[Dict[str, Any]] = []

    def on_pending(info: Dict[str, Any]) -> None:
        pending.append(info)
        link.decide_in_background()

    with PiperClient("py-agent-wait", name="Py Agent", env=link_env) as piper:
        got = piper.get_secret("API_TOKEN", reason="pytest: approval wait", on_pending=on_pending)
        assert got.value == setting("PIPER_TEST_TOKEN")
        assert got.source == "piper" and got.grant_id
        assert len(pending) == 1 and pending[0]["variable"] == "API_TOKEN" and pending[0]["request_id"]
        assert setting("PIPER_TEST_TOKEN") not in repr(got)
        again = piper.get_secret("api-token", on_pending=lambda info: pending.append(info))
        assert again.value == got.value and len(pending) == 1


def test_wait_false_raises_grant_needed_naming_the_request(link: Link, link_env: Dict[str, str]) -> None:
    with PiperClient("py-agent-nowait", env=link_env, fallback_to_env=False) as piper:
        with pytest.raises(PiperGrantNeededError) as caught:
            piper.get_secret("PLAIN", wait=False)
        assert caught.value.code == "grant_needed" and caught.value.retryable
        assert caught.value.request_id is not None
        assert caught.value.request_id in {r["id"] for r in link.pending()}
        link.deny(caught.value.request_id)


def test_environment_fallback_follows_pyper_sdk_names_when_the_link_cannot_give(link_env: Dict[str, str]) -> None:
    env = {**link_env, "APP_OPENAI_API_KEY": "from-env"}
    with PiperClient("py-agent-env", env=env, env_prefix="APP_") as piper:
        got = piper.get_secret("  openai-api key ", wait=False)
        assert (got.value, got.source) == ("from-env", "environment_variable")
        with pytest.raises(PiperSecretAcquisitionError) as caught:
            piper.get_secret("NOT_ANYWHERE", wait=False)
        assert caught.value.code == "secret_unavailable"
        assert set(caught.value.attempts) == {"piper", "environment_variable"}
        assert "APP_NOT_ANYWHERE is not set" in caught.value.message


def test_link_not_running_has_the_typescript_sdks_sentence() -> None:
    with PiperClient("py-agent-dead", link_url=DEAD_LINK, fallback_to_env=False, env={}) as piper:
        with pytest.raises(PiperLinkNeededError) as caught:
            piper.get_secret("X")
        assert caught.value.code == "link_not_running"
        assert caught.value.message.startswith(LINK_NOT_RUNNING)
    with PiperClient("py-agent-dead2", link_url=DEAD_LINK, env={"X": ""}) as piper:
        assert piper.get_secret("x").value == ""


def test_denied_is_a_forbidden_error(link: Link, link_env: Dict[str, str]) -> None:
    with PiperClient("py-agent-denied", env=link_env, fallback_to_env=False) as piper:
        with pytest.raises(PiperForbiddenError) as caught:
            piper.get_secret("DENIED_KEY", on_pending=lambda _: link.decide_in_background(deny=("DENIED_KEY",)))
        assert caught.value.code == "denied" and not caught.value.retryable


def test_get_secrets_one_card_partial_results_and_resolve_many_all_or_nothing(link: Link, link_env: Dict[str, str]) -> None:
    seen: List[Dict[str, Any]] = []

    def on_pending(info: Dict[str, Any]) -> None:
        seen.append(info)
        link.decide_in_background(deny=("BATCH_C",))

    with PiperClient("py-agent-batch", env=link_env, fallback_to_env=False) as piper:
        got = piper.get_secrets(["BATCH_A", "BATCH_B", "BATCH_C"], reason="pytest batch", on_pending=on_pending)
        assert len(seen) == 1 and len(seen[0]["request_ids"]) == 3 and seen[0]["batch_id"]
        assert {k: v.value for k, v in got.resolved.items()} == {"BATCH_A": "value-of-batch_a", "BATCH_B": "value-of-batch_b"}
        assert list(got.failures) == ["BATCH_C"]
        assert (got.failures["BATCH_C"].code, got.failures["BATCH_C"].retryable) == ("denied", False)
        assert not got.complete
        both = piper.resolve_many(["BATCH_A", "BATCH_B"])
        assert set(both) == {"BATCH_A", "BATCH_B"}
        with pytest.raises(PiperBatchError) as caught:
            piper.resolve_many(["BATCH_A", "NEVER_STORED_X"], wait=False)
        assert caught.value.code == "batch_incomplete" and list(caught.value.failures) == ["NEVER_STORED_X"]
        assert caught.value.failures["NEVER_STORED_X"].code == "grant_needed"
        assert "value-of-batch_a" not in str(caught.value)


def test_checks_without_the_value(link: Link, link_env: Dict[str, str]) -> None:
    with PiperClient("py-agent-checks", env=link_env, fallback_to_env=False) as piper:
        v = piper.validate("basic-cred")
        assert (v.normalized, v.well_formed, v.mapped, v.secret_name) == ("basic_cred", True, True, "BASIC_CRED")
        missing = piper.validate("NO_SUCH_SECRET_X")
        assert (missing.well_formed, missing.mapped, missing.secret_name) == (True, False, None)
        bad = piper.validate("!!!")
        assert not bad.well_formed and bad.problem
        meta = piper.metadata("BASIC_CRED")
        assert meta.name == "BASIC_CRED" and meta.hosts is None and meta.created_at <= meta.updated_at
        assert setting("PIPER_TEST_BASIC") not in repr(meta)
        with pytest.raises(PiperError) as caught:
            piper.metadata("NO_SUCH_SECRET_X")
        assert caught.value.code == "secret_not_found"
        before = piper.permission_check("BASIC_CRED")
        assert (before.granted, before.grant) == (False, None)
        piper.get_secret("BASIC_CRED", on_pending=lambda _: link.decide_in_background())
        after = piper.permission_check("basic_cred")
        assert after.granted and after.grant is not None
        assert after.grant.mode == {"kind": "read"} and after.grant.scope == "until_revoked" and after.grant.secret_name == "BASIC_CRED"
    # Another program's grant is not this one's.
    with PiperClient("py-agent-other", env=link_env) as other:
        assert not other.permission_check("BASIC_CRED").granted


def test_every_injection_style_reaches_the_upstream_and_echoes_are_redacted(link: Link, link_env: Dict[str, str], upstream: str) -> None:
    token, basic = setting("PIPER_TEST_TOKEN"), setting("PIPER_TEST_BASIC")
    approve = lambda _: link.decide_in_background()  # noqa: E731
    with PiperClient("py-agent-calls", env=link_env) as piper:
        styles: List[Dict[str, Any]] = [
            {"bearer": "API_TOKEN"},
            {"basic": "BASIC_CRED"},
            {"header": {"X-Api-Key": "API_TOKEN"}},
            {"query": {"key": "API_TOKEN"}},
            {"body_field": {"auth.token": "API_TOKEN"}, "json": {"auth": {}}},
            {"form_field": {"token": "API_TOKEN"}, "body": "a=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        ]
        expected = ["bearer", "basic", "header", "query", "bodyField", "formField"]
        for style, key in zip(styles, expected):
            r = piper.call(f"{upstream}/inspect", "POST", reason="pytest injections", on_pending=approve, ask_if_refused=True, **style)
            assert r.status_code == 200, r.text
            assert r.json()[key] is True, (key, r.json())
            assert r.duration_ms >= 0 and not r.redacted
        echo = piper.call(f"{upstream}/echo", "POST", bearer="API_TOKEN", body="hello", on_pending=approve, ask_if_refused=True)
        assert echo.redacted and echo.status_code == 200
        assert token not in echo.text and "[REDACTED by Piper Link]" in echo.text
        assert token not in echo.headers["x-echo-auth"]
        assert not any(hasattr(echo, name) for name in ("value", "secret", "token"))
        assert basic not in echo.text


def test_streaming_delivers_chunks_before_the_answer_ends(link: Link, link_env: Dict[str, str], upstream: str) -> None:
    with PiperClient("py-agent-calls", env=link_env) as piper:
        with piper.stream_call(f"{upstream}/stream", bearer="API_TOKEN", on_pending=lambda _: link.decide_in_background(), ask_if_refused=True) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
            chunks = stream.iter_bytes()
            first = next(chunks)
            # The upstream holds the rest until this request: the first chunk came while the answer was open.
            assert b"data: one" in first and setting("PIPER_TEST_TOKEN").encode() not in first
            assert upstream_get("/release") == b"released"
            rest = b"".join(chunks)
            assert rest.endswith(b"data: two\n\n")
            assert stream.redacted and stream.duration_ms is not None


def test_asyncio_client(link: Link, link_env: Dict[str, str], upstream: str) -> None:
    async def main() -> None:
        async with AsyncPiperClient("py-agent-async", env=link_env, fallback_to_env=False) as piper:
            got = await piper.get_secret("ASYNC_KEY", on_pending=lambda _: link.decide_in_background())
            assert got.value == "value-of-async_key"
            # Concurrent requests share one connection.
            many = await asyncio.gather(*(piper.get_secret("ASYNC_KEY") for _ in range(10)))
            assert {m.value for m in many} == {"value-of-async_key"}
            batch = await piper.get_secrets(["ASYNC_KEY", "NEVER_STORED_Y"], wait=False)
            assert set(batch.resolved) == {"ASYNC_KEY"} and batch.failures["NEVER_STORED_Y"].code == "grant_needed"
            v = await piper.validate("ASYNC_KEY")
            assert v.mapped
            r = await piper.call(f"{upstream}/inspect", bearer="ASYNC_KEY", on_pending=lambda _: link.decide_in_background(), ask_if_refused=True)
            assert r.status_code == 200
            stream = await piper.stream_call(f"{upstream}/inspect", bearer="ASYNC_KEY")
            body = await stream.aread()
            assert b'"method":"GET"' in body

    asyncio.run(main())


def test_one_sync_client_shared_by_threads(link: Link, link_env: Dict[str, str]) -> None:
    with PiperClient("py-agent-threads", env=link_env, fallback_to_env=False) as piper:
        piper.get_secret("PLAIN", on_pending=lambda _: link.decide_in_background())
        results: List[str] = []
        errors: List[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(5):
                    results.append(piper.get_secret("PLAIN").value)
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and results == ["value-of-plain"] * 40
    with pytest.raises(PiperError) as caught:
        piper.get_secret("PLAIN")
    assert caught.value.code == "closed"


def test_run_puts_values_only_in_the_childs_environment(link: Link, link_env: Dict[str, str]) -> None:
    digest = setting("PIPER_TEST_TOKEN_SHA256")
    check = "import hashlib, os, sys; sys.exit(0 if hashlib.sha256(os.environ['OPENAI'].encode()).hexdigest() == sys.argv[1] and os.environ['PLAIN'] == 'value-of-plain' else 3)"
    with PiperClient("py-agent-threads", env=link_env, fallback_to_env=False) as piper:
        piper.get_secret("API_TOKEN", on_pending=lambda _: link.decide_in_background())
        done = piper.run([sys.executable, "-c", check, digest], secrets={"OPENAI": "API_TOKEN", "PLAIN": "PLAIN"})
        assert done.returncode == 0
        child = piper.spawn([sys.executable, "-c", check, digest], secrets={"OPENAI": "API_TOKEN", "PLAIN": "PLAIN"})
        assert child.wait() == 0
        assert "OPENAI" not in os.environ
        assert hashlib.sha256(b"").hexdigest() != digest


def test_provider_caches_and_fails_closed_against_the_link(link: Link, link_env: Dict[str, str]) -> None:
    with PiperClient("py-agent-threads", env=link_env, fallback_to_env=False) as piper:
        provider = SecretProvider(piper, ttl_seconds=3600)
        assert provider.get("PLAIN") == "value-of-plain"
        assert provider.get("PLAIN") == "value-of-plain"
        provider.invalidate()
        assert provider.get("PLAIN") == "value-of-plain"
    with PiperClient("py-agent-provider-dead", link_url=DEAD_LINK, fallback_to_env=False, env={}) as dead:
        with pytest.raises(PiperLinkNeededError):
            SecretProvider(dead).get("PLAIN")
