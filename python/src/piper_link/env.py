"""Environment-variable fallback with pyper-sdk 0.7's rules (``PiperClient._perform_get_secret``),
the same as the TypeScript SDK's (packages/sdk/src/env.ts)::

    name = variable.strip()
    env_var = env_map[name]                 # when the map has it, used as is
    else: n = name.upper(); n = re.sub(r'[^A-Z0-9_]', '_', n); n = re.sub(r'_+', '_', n)
          env_var = prefix + n

An empty value counts as set (pyper-sdk tests ``os.environ.get(name) is not None``).
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

_OUTSIDE = re.compile(r"[^A-Z0-9_]")
_RUNS = re.compile(r"_+")


def env_name_for(variable: str, prefix: str = "", env_map: Optional[Mapping[str, str]] = None) -> str:
    """The environment variable pyper-sdk reads for ``variable`` (``"  OpenAI-API-Key "`` -> ``OPENAI_API_KEY``)."""
    name = variable.strip()
    if env_map is not None and name in env_map:
        return env_map[name]
    return prefix + _RUNS.sub("_", _OUTSIDE.sub("_", name.upper()))


def env_fallback_value(env: Mapping[str, str], name: str) -> Optional[str]:
    """The value of ``name`` in ``env``, or None when it is not set (an empty string is a value)."""
    return env.get(name)
