"""Finds the Link (DESIGN.md section 3), as the TypeScript SDK does (packages/sdk/src/discovery.ts): the
``link_url`` option, else ``PIPER_LINK_URL``, else the discovery file of the profile named by
``PIPER_LINK_PROFILE`` (default ``default``) when the process it names is alive, else
``ws://127.0.0.1:31477/v1/link``. Paths follow src/shared/discovery.ts.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Literal, Mapping, Optional

DEFAULT_LINK_PORT = 31477
DEFAULT_LINK_URL = f"ws://127.0.0.1:{DEFAULT_LINK_PORT}/v1/link"

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DISCOVERY_URL = re.compile(r"^ws://(127\.0\.0\.1|\[::1\]|localhost):\d+/v1/link$")

Source = Literal["option", "environment", "discovery_file", "default", "none"]


@dataclass(frozen=True)
class Discovered:
    """The Link's WebSocket URL and where it came from; ``url`` is None (``source`` ``"none"``) when
    ``PIPER_LINK_PROFILE`` names another profile than the default and its Link is not running."""

    url: Optional[str]
    source: Source


def _runtime_base(env: Mapping[str, str], platform: str, home: str) -> str:
    if platform == "win32":
        return env.get("APPDATA") or os.path.join(home, "AppData", "Roaming")
    if platform == "darwin":
        return os.path.join(home, "Library", "Application Support")
    xdg_runtime = env.get("XDG_RUNTIME_DIR")
    if xdg_runtime:
        return xdg_runtime
    return env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")


def discovery_file_path(env: Mapping[str, str], platform: str = sys.platform, profile: str = "default") -> Optional[str]:
    """The discovery file of ``profile``, or None when the profile name is not a valid one (no path is built from it)."""
    if profile != "default" and not _PROFILE_NAME.match(profile):
        return None
    home = env.get("HOME") or os.path.expanduser("~")
    folder = "piper-link" if profile == "default" else f"piper-link-{profile}"
    return os.path.join(_runtime_base(env, platform, home), folder, "link.json")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (ProcessLookupError, OSError):
        return False
    if not sys.platform.startswith("linux"):
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return False
    # A zombie has exited; its state letter follows the command name in parentheses.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


def discover_link_url(option: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Discovered:
    """The Link's URL: ``option`` > ``PIPER_LINK_URL`` > live discovery file > default. Never raises."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if option:
        return Discovered(option, "option")
    from_env = environ.get("PIPER_LINK_URL")
    if from_env:
        return Discovered(from_env, "environment")
    profile = environ.get("PIPER_LINK_PROFILE") or "default"
    path = discovery_file_path(environ, profile=profile)
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            url, pid = data.get("url"), data.get("pid")
            if isinstance(url, str) and _DISCOVERY_URL.match(url) and isinstance(pid, int) and pid > 0 and _pid_alive(pid):
                return Discovered(url, "discovery_file")
        except (OSError, ValueError, AttributeError):
            pass  # No file, unreadable, or not the JSON object it should be: the default.
    if profile != "default":
        # The default port is the default profile's Link, which must not answer for another profile.
        return Discovered(None, "none")
    return Discovered(DEFAULT_LINK_URL, "default")
