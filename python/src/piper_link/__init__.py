"""piper-link: get a person's secrets through Piper Link, with their approval — or use them without
reading them::

    from piper_link import PiperClient

    with PiperClient("my-agent", name="My Agent") as piper:
        key = piper.get_secret("OPENAI_API_KEY", reason="summarise today's email").value
        # several at once, one approval card, partial results
        got = piper.get_secrets(["OPENAI_API_KEY", "GITHUB_TOKEN"])
        # or let the Link make the call and inject the key: the value never enters this process
        models = piper.call("https://api.openai.com/v1/models", bearer="OPENAI_API_KEY").json()

``AsyncPiperClient`` has the same methods for asyncio; ``piper_link.testing.MockPiperLink`` is a
test double; ``piper_link.pyper`` is a bridge for code written against pyper-sdk.
"""

from ._version import VERSION as __version__
from .aio import AsyncCallStream, AsyncPiperClient
from .client import CallStream, PiperClient
from .discovery import DEFAULT_LINK_URL, Discovered, discover_link_url
from .env import env_name_for
from .errors import (
    PiperAuthError,
    PiperBatchError,
    PiperConfigError,
    PiperError,
    PiperForbiddenError,
    PiperGrantNeededError,
    PiperLinkLockedError,
    PiperLinkNeededError,
    PiperSecretAcquisitionError,
)
from .models import AgentGrant, CallResponse, GrantTerms, Headers, PermissionCheck, SecretMetadata, SecretResult, SecretsResult, Validation
from .provider import AsyncSecretProvider, SecretProvider

__all__ = [
    "__version__",
    "AgentGrant",
    "AsyncCallStream",
    "AsyncPiperClient",
    "AsyncSecretProvider",
    "CallResponse",
    "CallStream",
    "DEFAULT_LINK_URL",
    "Discovered",
    "GrantTerms",
    "Headers",
    "PermissionCheck",
    "PiperAuthError",
    "PiperBatchError",
    "PiperClient",
    "PiperConfigError",
    "PiperError",
    "PiperForbiddenError",
    "PiperGrantNeededError",
    "PiperLinkLockedError",
    "PiperLinkNeededError",
    "PiperSecretAcquisitionError",
    "SecretMetadata",
    "SecretProvider",
    "SecretResult",
    "SecretsResult",
    "Validation",
    "discover_link_url",
    "env_name_for",
]
