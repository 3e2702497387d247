"""Pod volumes made real in a per-pod folder, and each container's bind mounts onto them.

Supported: ``emptyDir``, ``secret``, ``configMap``, ``downwardAPI``, ``projected`` (secret, configMap and
downwardAPI sources) and ``hostPath``. Contents are written once when the pod starts: later changes
to a Secret or ConfigMap are not reflected (a kubelet would sync them within a minute)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tests.support.k8s.pod_env import ConfigError, DataLookup, field_value

__all__ = ["Mount", "container_mounts", "materialise_volumes"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def _write(path: Path, data: str | bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # secrets arrive decoded with surrogateescape, so binary values round-trip exactly
    path.write_bytes(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    path.chmod(mode)


def _safe(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ConfigError(f"volume item path {rel!r} must be relative without '..'")
    return p


def _keyed(
    root: Path, data: Mapping[str, str | bytes], items: list[Obj] | None, mode: int, what: str, optional: bool
) -> None:
    if items:
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise ConfigError(f"{what}: key {item['key']!r} not found")
            _write(root / _safe(item["path"]), data[item["key"]], int(item.get("mode", mode)))
    else:
        for key, value in data.items():
            _write(root / _safe(key), value, mode)


def _source(root: Path, pod: Obj, src: Obj, lookup: DataLookup, default_mode: int) -> None:
    mode = int(src.get("defaultMode", default_mode))
    if "secret" in src or "configMap" in src:
        kind = "secret" if "secret" in src else "configmap"
        ref = src.get("secret") or src.get("configMap") or {}
        name = str(ref.get("secretName") or ref.get("name") or "")
        data = lookup(kind, name)
        if data is None:
            if ref.get("optional"):
                return
            raise ConfigError(f'{"secret" if kind == "secret" else "configmap"} "{name}" not found')
        _keyed(
            root,
            data,
            ref.get("items"),
            int(ref.get("defaultMode", mode)),
            f"{kind} {name}",
            bool(ref.get("optional")),
        )
    elif "downwardAPI" in src:
        for item in (src["downwardAPI"] or {}).get("items") or []:
            if "fieldRef" not in item:
                raise ConfigError("downwardAPI volume items support fieldRef only here")
            value = field_value(pod, item["fieldRef"]["fieldPath"])
            _write(root / _safe(item["path"]), value, int(item.get("mode", mode)))


def materialise_volumes(pod: Obj, root: Path, lookup: DataLookup) -> dict[str, Path]:
    """Write every volume of ``pod`` under ``root``; ``{volume name: host path}``."""
    paths: dict[str, Path] = {}
    for vol in pod.get("spec", {}).get("volumes") or []:
        name = str(vol["name"])
        if "hostPath" in vol:
            paths[name] = Path(vol["hostPath"]["path"])
            continue
        target = root / name
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o777)  # emptyDir is world-writable, as a kubelet makes it
        if "emptyDir" in vol:
            pass
        elif any(k in vol for k in ("secret", "configMap", "downwardAPI")):
            src = {k: v for k, v in vol.items() if k != "name"}
            _source(target, pod, src, lookup, 0o644)
        elif "projected" in vol:
            proj = vol["projected"] or {}
            for src in proj.get("sources") or []:
                if "serviceAccountToken" in src:
                    raise ConfigError(
                        "projected serviceAccountToken volumes are not supported by the node agent"
                    )
                _source(target, pod, src, lookup, int(proj.get("defaultMode", 0o644)))
        else:
            kind = next((k for k in vol if k != "name"), "?")
            raise ConfigError(f"volume {name!r}: type {kind!r} is not supported by the node agent")
        paths[name] = target
    return paths


def container_mounts(container: Obj, volumes: Mapping[str, Path]) -> list[Mount]:
    """The bind mounts of ``container``, parents before children."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in volumes:
            raise ConfigError(f"volumeMount {vm['name']!r} names no volume of the pod")
        source = volumes[vm["name"]]
        if vm.get("subPath"):
            source = source / _safe(vm["subPath"])
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, str(vm["mountPath"]), bool(vm.get("readOnly"))))
    return sorted(mounts, key=lambda m: len(PurePosixPath(m.target).parts))
