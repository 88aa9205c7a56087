"""`lf-wrap model pull`: a base model from Hugging Face, ModelScope or a local folder,
ending in one plain folder path that `train` and `serve` accept.

The real clients do the downloading: `huggingface_hub.snapshot_download` (which honours
HF_ENDPOINT mirrors, HF_HOME and HF_TOKEN) and `modelscope.snapshot_download`.  What
lf-wrap adds: a model already downloaded is found without the network, an unreachable
hub is one clear message naming the endpoint within seconds, and the result is checked.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from lf_wrap.model.folder import check_model_dir
from lf_wrap.util.errors import ExternalError, LfWrapError, require

# ORG/NAME as the Hugging Face Hub and ModelScope spell a model: one slash, no path prefix (./ / ~).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")


def is_hub_id(ref: str) -> bool:
    """Does `ref` read as a hub id (ORG/NAME) rather than a path? Whether a folder of that name exists is
    the caller's first question: a folder always wins."""
    return HUB_ID.fullmatch(ref) is not None


Hub = Literal["hf", "modelscope"]
CONNECT_TIMEOUT_S = 5.0
HF_DEFAULT = "https://huggingface.co"
MS_DEFAULT = "https://www.modelscope.cn"


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HF_DEFAULT).rstrip("/")


def hf_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return os.path.join(home, "hub")


def ms_endpoint() -> str:
    return os.environ.get("MODELSCOPE_DOMAIN", MS_DEFAULT).rstrip("/")


def _reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None if a TCP connection to the endpoint opens, else why not (fast, no retries)."""
    if not url.startswith(("http://", "https://")):
        url = f"https://{url}"
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:
        return f"{type(err).__name__}: {err}"


def _offline_error(hub: Hub, endpoint: str, why: str) -> ExternalError:
    if hub == "hf":
        hint = (
            "check your network; behind a firewall use a mirror (export HF_ENDPOINT=https://hf-mirror.com), "
            "or try --hub modelscope, or pass a local folder"
        )
    else:
        hint = "check your network, try --hub hf (with HF_ENDPOINT for a mirror), or pass a local folder"
    return ExternalError(f"cannot reach {endpoint} ({why})", hint=hint)


def pull(model_id: str, hub: Hub = "hf", revision: str | None = None, local_dir: Path | None = None) -> Path:
    local = Path(model_id).expanduser()
    if local.exists():
        check_model_dir(local, "model")
        return local.resolve()
    if not is_hub_id(model_id):
        raise LfWrapError(
            f"{model_id!r} is neither a local folder nor a hub id like 'Qwen/Qwen2.5-0.5B-Instruct'",
            hint="check the path, or give ORG/NAME",
        )
    path = _pull_hf(model_id, revision, local_dir) if hub == "hf" else _pull_modelscope(model_id, revision, local_dir)
    check_model_dir(path, "downloaded model")
    return path.resolve()


def cached(model_id: str, revision: str | None = None) -> Path:
    """A hub model already in the local Hugging Face cache, found without the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(
            snapshot_download(repo_id=model_id, revision=revision, cache_dir=hf_cache_dir(), local_files_only=True)
        )
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        raise LfWrapError(
            f"model {model_id!r}: not a folder here, and not in the local Hugging Face cache ({hf_cache_dir()})",
            hint=f"download it first: lf-wrap model pull {model_id}   (or pass the model's folder)",
        ) from None
    check_model_dir(path, "cached model")
    return path.resolve()


def _pull_hf(model_id: str, revision: str | None, local_dir: Path | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = hf_endpoint()

    def snapshot(local_files_only: bool) -> Path:
        # The endpoint and cache as the environment says now, not when huggingface_hub was imported.
        folder = snapshot_download(
            model_id,
            revision=revision,
            local_dir=str(local_dir) if local_dir else None,
            endpoint=endpoint,
            cache_dir=hf_cache_dir(),
            local_files_only=local_files_only,
            etag_timeout=CONNECT_TIMEOUT_S,
        )
        return Path(folder)

    try:  # already downloaded? no network needed
        return snapshot(local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ExternalError(
            f"{model_id} is not in the local cache and HF_HUB_OFFLINE is set",
            hint="unset HF_HUB_OFFLINE to download it, or pass a local folder",
        )
    why = _reachable(endpoint)
    if why:
        raise _offline_error("hf", endpoint, why)
    try:
        return snapshot(local_files_only=False)
    except GatedRepoError as err:
        raise ExternalError(
            f"{model_id} is gated on {endpoint}: accept its licence on the model page", hint="then set HF_TOKEN"
        ) from err
    except RepositoryNotFoundError as err:
        raise ExternalError(
            f"{model_id} was not found on {endpoint}", hint="check the spelling; for a private model set HF_TOKEN"
        ) from err
    except RevisionNotFoundError as err:
        raise ExternalError(f"{model_id} has no revision {revision!r} on {endpoint}") from err
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise _offline_error("hf", endpoint, str(err).splitlines()[0]) from err


def _pull_modelscope(model_id: str, revision: str | None, local_dir: Path | None) -> Path:
    # An optional extra (`lf-wrap[modelscope]`): Hugging Face is the default hub, and nothing else needs it.
    require(("modelscope",), "lf-wrap model pull --hub modelscope", hint="pip install 'lf-wrap[modelscope]'")
    from modelscope import snapshot_download

    endpoint = ms_endpoint()
    why = _reachable(endpoint)
    if why:
        raise _offline_error("modelscope", endpoint, why)
    try:
        return Path(
            snapshot_download(model_id, revision=revision or "master", local_dir=str(local_dir) if local_dir else None)
        )
    except Exception as err:  # modelscope raises plain exceptions of many kinds
        raise ExternalError(f"ModelScope download of {model_id} from {endpoint} failed: {err}") from err
