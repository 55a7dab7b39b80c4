"""What a rehearsal fixture is: small files in a data set's canonical format and layout.

A builder makes one data set's (or one pretrained model's) fixture in a folder; the rehearsal
serves ``served`` over loopback HTTP under the data set's ``base_url``, merges ``params`` into
``data.<name>`` of params.yaml, and runs the stages with ``env`` (for weights that a library
reads from its own cache). Everything else is the full profile's own code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Fixture:
    served: dict[str, Path] = field(default_factory=dict)  # URL path under base_url -> file
    params: dict = field(default_factory=dict)  # merged into params.yaml's data.<name>
    env: dict[str, str] = field(default_factory=dict)  # for the stages (TORCH_HOME, HF_HOME, ...)


Builder = Callable[[Path, np.random.Generator], Fixture]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
