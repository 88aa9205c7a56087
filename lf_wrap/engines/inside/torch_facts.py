"""Prints what an environment's torch can do as one JSON object; runs with the training or serving
environment's Python (`python -I torch_facts.py PACKAGE...`), never imports lf-wrap.

Keys: python, torch (version, or null when torch is missing), cuda_build (the CUDA torch was
built for, null for a CPU build), cuda_available, cuda_error (why not, in torch's own words: the
warning it gives when the driver is too old), devices ([{name, memory_mib, capability}]), bf16,
and packages ({name: version or null}, read from the installed metadata, nothing imported).
"""

from __future__ import annotations

import json
import sys
import warnings
from importlib import metadata
from typing import Any


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(packages: list[str]) -> int:
    facts: dict[str, Any] = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "packages": {name: _version(name) for name in packages},
        "torch": None,
        "cuda_build": None,
        "cuda_available": False,
        "cuda_error": None,
        "devices": [],
        "bf16": False,
    }
    try:
        import torch
    except Exception as err:  # a torch that does not import says why here, not as a traceback
        facts["cuda_error"] = f"import torch failed: {type(err).__name__}: {err}"
        print(json.dumps(facts))
        return 0
    facts["torch"] = torch.__version__
    facts["cuda_build"] = torch.version.cuda
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            available = bool(torch.cuda.is_available())
        except Exception as err:
            available = False
            caught.append(warnings.WarningMessage(str(err), RuntimeWarning, "", 0))
    facts["cuda_available"] = available
    if not available and torch.version.cuda is not None:
        said = " ".join(str(w.message).strip() for w in caught)
        facts["cuda_error"] = said or "torch.cuda.is_available() is False"
    if available:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            facts["devices"].append(
                {
                    "name": props.name,
                    "memory_mib": int(props.total_memory // (1024 * 1024)),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
        facts["bf16"] = bool(torch.cuda.is_bf16_supported())
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
