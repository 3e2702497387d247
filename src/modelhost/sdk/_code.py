"""What a deploy or an update sends besides the configuration: the code snapshot, the environment
reference and the model ids.

The snapshot is made here with :func:`modelhost.build.snapshot.make_snapshot` (deterministic zip,
``.amlignore``/``.gitignore`` honoured, entry script checked) and uploaded as a blob only when the
control plane lacks it. Without ``source_directory`` only the entry script travels, as in v1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhost.build.snapshot import make_snapshot
from modelhost.errors import ValidationError
from modelhost.sdk._client import ControlClient
from modelhost.spec.names import parse_model_id

if TYPE_CHECKING:
    from modelhost.sdk.inference import InferenceConfig
    from modelhost.sdk.workspace import Workspace

__all__ = ["environment_ref", "model_ids_of", "upload_code"]


def model_ids_of(models: object) -> list[str]:
    """``name:version`` ids of ``models``: ``Model`` objects (their ``id``) or id strings."""
    if models is None:
        return []
    if isinstance(models, str) or not isinstance(models, Iterable):
        items: list[object] = [models]
    else:
        items = list(models)
    ids: list[str] = []
    for item in items:
        model_id = getattr(item, "id", item)
        if not isinstance(model_id, str):
            raise ValidationError(
                f"models must hold Model objects or 'name:version' ids, got {item!r}",
                hint="Pass models=[Model(ws, 'iris')] or models=['iris:1'].",
            )
        name, version = parse_model_id(model_id)
        if version is None:
            raise ValidationError(
                f"Model id {model_id!r} has no version",
                hint=f"Pass Model(ws, {name!r}) for the latest version, or '{name}:<version>'.",
            )
        ids.append(model_id)
    return ids


def upload_code(client: ControlClient, config: InferenceConfig) -> dict[str, str]:
    """Snapshot the code of ``config``, upload it if new; the body keys for the control plane:
    ``entry_script`` (relative to the snapshot root), ``source_directory`` (its basename, "" for a
    lone script) and ``snapshot`` (the zip's sha256)."""
    script = config.entry_script_path()
    with tempfile.TemporaryDirectory(prefix="modelhost-snapshot-") as tmp:
        out = Path(tmp) / "out"
        if config.source_directory:
            root, entry, source = Path(config.source_directory), config.entry_script, config.source_directory
            basename = os.path.basename(source.rstrip("/\\"))
        else:
            root, entry, basename = Path(tmp) / "src", script.name, ""
            root.mkdir()
            shutil.copy2(script, root / script.name)
        snapshot = make_snapshot(root, entry, out)
        missing = client.post("/api/v1/blobs/missing", {"digests": [snapshot.digest]})["missing"]
        if snapshot.digest in missing:
            client.put_blob(snapshot.digest, snapshot.path)
    return {"entry_script": snapshot.entry_script, "source_directory": basename, "snapshot": snapshot.digest}


def environment_ref(
    workspace: Workspace, config: InferenceConfig, service_name: str
) -> dict[str, Any] | None:
    """``{"name", "version"}`` of the environment the service runs in, registered first when needed;
    None: inherit the control plane's interpreter (no environment and no conda file)."""
    from modelhost.sdk.environment import Environment

    env = config.environment
    if env is None and config.conda_file is not None:
        path = config.conda_file_path()
        assert path is not None
        env = Environment.from_conda_specification(f"{service_name}-env", path)
    if env is None:
        return None
    if isinstance(env, str):
        name, _, raw = env.partition(":")
        env = Environment.get(workspace, name, int(raw) if raw.isdigit() else None)
    if isinstance(env, Mapping):
        return {"name": str(env["name"]), "version": env.get("version")}
    if not isinstance(env, Environment):
        raise ValidationError(
            "InferenceConfig environment must be an Environment or a registered environment's name, "
            f"got {env!r}",
            hint="Pass Environment.get(ws, 'name') or Environment.from_conda_specification(...).",
        )
    if env.version is None or not env.record:
        env.register(workspace)
    return {"name": env.name, "version": env.version}
