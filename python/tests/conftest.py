"""Fixtures: a real Piper Link per session (the compiled CLI, its embedded authority, the test
runner's real keyring), started in a temporary HOME and profile as test/cli-helpers.ts does, with
the person's answers typed at real prompts through test/pty_run.py. Run through the repository's
test runner (`node scripts/run-tests.mjs test/python-sdk.test.ts`), which provides the keyring, a
local HTTPS upstream and the PIPER_TEST_* settings below.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

import pytest


def setting(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the Python tests through `node scripts/run-tests.mjs test/python-sdk.test.ts`.")
    return value


@dataclass
class Link:
    """One running Link and the CLI to drive it."""

    env: Dict[str, str]
    url: str
    home: str
    approved: List[str] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)

    def cli(self, *args: str, stdin: Optional[str] = None, person: bool = False) -> subprocess.CompletedProcess[str]:
        """Runs `piper-link ARGS`; with `person`, at a pty whose prompts get the person's answers."""
        argv = [setting("PIPER_TEST_NODE"), setting("PIPER_TEST_BIN"), *args]
        if person:
            spec = json.dumps({"answers": json.loads(setting("PIPER_TEST_ANSWERS")), "timeout": 60})
            argv = [setting("PIPER_TEST_PYTHON"), setting("PIPER_TEST_PTY"), spec, "--", *argv]
        return subprocess.run(argv, env=self.env, input=stdin, capture_output=True, text=True, timeout=90)

    def cli_json(self, *args: str, person: bool = False) -> Any:
        r = self.cli(*args, "--json", person=person)
        assert r.returncode == 0, f"piper-link {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}"
        return json.loads(r.stdout)

    def set_secret(self, name: str, value: str) -> None:
        r = self.cli("secrets", "set", name, stdin=value + "\n", person=True)
        assert r.returncode == 0, r.stdout + r.stderr
        self.stored.add(name.upper())

    def pending(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self.cli_json("requests")
        return result

    def approve(self, request_id: str, *extra: str) -> None:
        r = self.cli("approve", request_id, "--until-revoked", *extra, person=True)
        # Another decider (an earlier test's background thread) may have answered it first, or the
        # program that asked (an earlier example) has exited, which the Link refuses to decide for.
        assert r.returncode == 0 or already_over(r.stderr), r.stdout + r.stderr
        self.approved.append(request_id)

    def deny(self, request_id: str) -> None:
        r = self.cli("deny", request_id)
        assert r.returncode == 0 or already_over(r.stderr), r.stdout + r.stderr

    def decide_pending(self, deny: tuple[str, ...] = ()) -> None:
        """Approves every pending request (until revoked), denying those whose variable is in `deny`
        or names no stored secret (left pending by earlier `wait=False` asks)."""
        for request in self.pending():
            name = request["variable"].upper()
            if name in {d.upper() for d in deny} or name not in self.stored:
                self.deny(request["id"])
            else:
                self.approve(request["id"])

    def decide_in_background(self, deny: tuple[str, ...] = ()) -> threading.Thread:
        """Decides from another thread, as the person would while the agent waits (for on_pending)."""
        thread = threading.Thread(target=self.decide_pending, args=(deny,), daemon=True)
        thread.start()
        return thread


def already_over(stderr: str) -> bool:
    """A decision that came too late: another decider answered, or the asking program has exited."""
    return "nothing to decide" in stderr or "has exited; there is nobody to give it to" in stderr


def start_link(signed_in: bool = True) -> Link:
    home = tempfile.mkdtemp(prefix="piper-py-link-")
    passphrase_file = os.path.join(home, "passphrase")
    with open(passphrase_file, "w", encoding="utf-8") as f:
        f.write(setting("PIPER_TEST_PASSPHRASE") + "\n")
    os.chmod(passphrase_file, 0o600)
    env = {
        **os.environ,
        "PIPER_LINK_PASSPHRASE_FILE": passphrase_file,
        "HOME": home,
        "XDG_RUNTIME_DIR": os.path.join(home, "run"),
        "XDG_DATA_HOME": os.path.join(home, "data"),
        "XDG_STATE_HOME": os.path.join(home, "state"),
        "PIPER_LINK_PROFILE": f"py{secrets.token_hex(4)}",
        "PIPER_LINK_EXTRA_CA": setting("PIPER_TEST_UPSTREAM_CA"),
    }
    env.pop("PIPER_LINK_URL", None)
    link = Link(env=env, url="", home=home)
    status = link.cli_json("start", "--port", "0")
    link.url = status["url"]
    # Unattended start from the passphrase file: the person sets the approval PIN once at a terminal.
    state = link.cli("status", "--json")
    if '"pinSet": true' not in state.stdout:
        r = link.cli("pin", "set", person=True)
        assert r.returncode == 0, r.stdout + r.stderr
    if signed_in:
        link.cli_json("dev", "sign-in")
    return link


@pytest.fixture(scope="session")
def link() -> Iterator[Link]:
    """A signed-in Link with API_TOKEN, BASIC_CRED, BATCH_A/B/C and PLAIN stored."""
    started = start_link()
    started.set_secret("API_TOKEN", setting("PIPER_TEST_TOKEN"))
    started.set_secret("BASIC_CRED", setting("PIPER_TEST_BASIC"))
    for name in ("BATCH_A", "BATCH_B", "BATCH_C", "PLAIN", "ASYNC_KEY", "DENIED_KEY"):
        started.set_secret(name, f"value-of-{name.lower()}")
    yield started
    started.cli("stop")
    shutil.rmtree(started.home, ignore_errors=True)


@pytest.fixture()
def link_env(link: Link) -> Dict[str, str]:
    """An environment for SDK clients that finds the session's Link by discovery (its profile's file)."""
    return {k: v for k, v in link.env.items() if k != "PIPER_LINK_URL"}


@pytest.fixture(scope="session")
def upstream() -> str:
    """The local HTTPS upstream's origin (https://127.0.0.1:PORT)."""
    return setting("PIPER_TEST_UPSTREAM")


def upstream_get(path: str) -> bytes:
    """A direct HTTPS request to the upstream (not through the Link), trusting its CA."""
    context = ssl.create_default_context(cafile=setting("PIPER_TEST_UPSTREAM_CA"))
    with urllib.request.urlopen(setting("PIPER_TEST_UPSTREAM") + path, context=context, timeout=30) as r:
        data: bytes = r.read()
        return data
