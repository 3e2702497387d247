"""What a container's process gets, worked out as a kubelet would, as pure functions over pod dicts:
its environment (``env``, ``envFrom``, ``valueFrom``), its command line (``$(VAR)`` expansion) and the
downward-API values. Object data comes in through ``DataLookup``; nothing here does I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity as _parse

__all__ = ["ConfigError", "DataLookup", "command_line", "container_env", "expand", "field_value"]

Obj = dict[str, Any]
DataLookup = Callable[[str, str], Mapping[str, str] | None]
"""``(kind, name) -> data`` for kind ``secret`` or ``configmap`` in the pod's namespace (decoded), or
``None`` when the object does not exist."""

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity (``500m``, ``2Gi``) as a number."""
    return Decimal(_parse(text))  # type: ignore[no-untyped-call]


class ConfigError(Exception):
    """The container cannot be configured (kubelet's ``CreateContainerConfigError``)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion: ``$(VAR)`` -> its value when defined (else left as is), ``$$`` -> ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def field_value(pod: Obj, path: str) -> str:
    """A downward-API ``fieldRef.fieldPath`` of ``pod``."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef.fieldPath {path!r}")
    return str(simple[path] or "")


def resource_value(pod: Obj, ref: Obj, allocatable: Mapping[str, str], default_container: str) -> str:
    """A ``resourceFieldRef`` (limits fall back to the node's allocatable, as a kubelet's do)."""
    name = ref.get("containerName") or default_container
    container = next((c for c in _all_containers(pod) if c.get("name") == name), None)
    if container is None:
        raise ConfigError(f"resourceFieldRef names unknown container {name!r}")
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    res = (container.get("resources") or {}).get(kind) or {}
    value = res.get(resource) or (allocatable.get(resource) if kind == "limits" else None) or "0"
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    return str(math.ceil((parse_quantity(str(value))) / divisor))


def _all_containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec", {})
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _ref_value(kind: str, ref: Obj, lookup: DataLookup) -> str | None:
    data = lookup(kind, str(ref.get("name", "")))
    optional = bool(ref.get("optional"))
    label = "secret" if kind == "secret" else "configmap"
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{label} "{ref.get("name")}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {label.capitalize()} {ref.get('name')}")
    return data[ref["key"]]


def container_env(
    pod: Obj, container: Obj, lookup: DataLookup, allocatable: Mapping[str, str], base: Mapping[str, str]
) -> dict[str, str]:
    """The environment of ``container``: ``base``, then ``envFrom`` sources, then ``env`` in order
    (each value expanded against what came before it)."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, lookup))
    for var in container.get("env") or []:
        value = _env_value(pod, container, var, lookup, allocatable, env)
        if value is not None:
            env[var["name"]] = value
    return env


def _env_from(source: Obj, lookup: DataLookup) -> dict[str, str]:
    kind = "secret" if "secretRef" in source else "configmap"
    ref = source.get("secretRef") or source.get("configMapRef") or {}
    data = lookup(kind, str(ref.get("name", "")))
    if data is None:
        if ref.get("optional"):
            return {}
        raise ConfigError(f'{"secret" if kind == "secret" else "configmap"} "{ref.get("name")}" not found')
    prefix = source.get("prefix", "")
    return {f"{prefix}{k}": v for k, v in data.items()}


def _env_value(
    pod: Obj,
    container: Obj,
    var: Obj,
    lookup: DataLookup,
    allocatable: Mapping[str, str],
    env: Mapping[str, str],
) -> str | None:
    if "valueFrom" not in var:
        return expand(str(var.get("value", "")), env)
    source = var["valueFrom"]
    if "secretKeyRef" in source:
        return _ref_value("secret", source["secretKeyRef"], lookup)
    if "configMapKeyRef" in source:
        return _ref_value("configmap", source["configMapKeyRef"], lookup)
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        return resource_value(pod, source["resourceFieldRef"], allocatable, str(container.get("name")))
    raise ConfigError(f"env {var.get('name')!r} has an unsupported valueFrom")


def command_line(
    container: Obj, entrypoint: tuple[str, ...], cmd: tuple[str, ...], env: Mapping[str, str]
) -> list[str]:
    """``command``/``args`` over the image's ENTRYPOINT/CMD, as Kubernetes combines them, expanded."""
    command, args = container.get("command"), container.get("args")
    argv = [*command, *(args or [])] if command else [*entrypoint, *(args if args is not None else cmd)]
    if not argv:
        raise ConfigError("no command specified (the image stand-in has no ENTRYPOINT)")
    return [expand(str(a), env) for a in argv]
