"""Credentials come from the environment only; store URIs (which the database keeps) never carry them.

:func:`check_store_uri` refuses a URI with a user/password part or a secret-looking query parameter;
:func:`mask_secrets` scrubs keys, tokens and signatures from any text before it is shown or logged.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

from orchestrator.config import mask_url

SUPABASE_URL_ENV = "SUPABASE_URL"
SUPABASE_STORAGE_URL_ENV = "SUPABASE_STORAGE_URL"
SUPABASE_KEY_ENVS = ("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY")
AWS_SECRET_ENVS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
SECRET_ENVS = SUPABASE_KEY_ENVS + AWS_SECRET_ENVS

_SECRET_PARAM_NAMES = re.compile(
    r"(?i)^(.*(secret|password|passwd|token|credential|signature).*|key|apikey|api_key|access_key|access_key_id"
    r"|aws_access_key_id|service_role_key|anon_key|auth|authorization)$"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")
_SUPABASE_NEW_KEY = re.compile(r"\bsb_(secret|publishable)_[A-Za-z0-9_-]{6,}")
_SECRET_QUERY_VALUE = re.compile(
    r"(?i)([?&](?:token|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|apikey|signature)=)[^&\s'\"]+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")


def mask_secrets(text: str) -> str:
    """Hide passwords in URLs, JWTs, Supabase keys, bearer tokens, URL signatures and any secret from the
    environment (SUPABASE_SERVICE_ROLE_KEY, SUPABASE_KEY, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)."""
    for name in SECRET_ENVS:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, "***")
    text = _JWT.sub("eyJ***", text)
    text = _SUPABASE_NEW_KEY.sub(lambda m: f"sb_{m.group(1)}_***", text)
    text = _SECRET_QUERY_VALUE.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    return mask_url(text)


def check_store_uri(uri: str, *, hint: str) -> None:
    """Refuse a store URI that embeds credentials: the URI is stored in the database and shown everywhere."""
    from orchestrator.artifacts.base import ArtifactError

    parts = urlsplit(uri)
    secret_params = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)
                     if _SECRET_PARAM_NAMES.match(name)]
    if "@" in parts.netloc or secret_params:
        shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
        what = "a user/password part" if "@" in parts.netloc else f"a secret parameter ({', '.join(secret_params)})"
        raise ArtifactError(
            f"artifact store URI {shown!r} embeds credentials ({what}); store URIs are saved in the "
            "tracking database and must not carry secrets",
            hint,
        )


def first_env(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first of ``names`` that is set in the environment: (name, value), or (None, None)."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return name, value
    return None, None
