"""``Workspace``: the v1 entry object, here a handle on one control plane.

``Workspace()`` / ``Workspace.from_config()`` is the local workspace (``MODELHOST_HOME``, default
``~/.modelhost``): its control plane is found through ``control.json`` and started in the
background when none runs. ``Workspace(url=..., token=...)`` talks to a remote control plane.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhost.sdk._client import ControlClient, connect
from modelhost.settings import Settings

if TYPE_CHECKING:
    from modelhost.sdk.environment import Environment
    from modelhost.sdk.model import Model

__all__ = ["Workspace"]


class Workspace:
    """A modelhost workspace (v1 ``azureml.core.Workspace``).

    The v1 identity arguments are accepted so notebooks run unchanged: ``workspace_name`` becomes
    :attr:`name`; ``subscription_id`` and ``resource_group`` are kept as attributes only.
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        home: str | os.PathLike[str] | None = None,
        autostart: bool = True,
    ) -> None:
        settings = None if url is not None else Settings.from_env(home=None if home is None else Path(home))
        self._client: ControlClient = connect(settings, url=url, token=token, autostart=autostart)
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.home: Path | None = settings.home if settings is not None else None
        self._details: dict[str, Any] | None = None
        self.name: str = workspace_name or (
            self.home.name if self.home is not None else self.get_details()["name"]
        )

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """The local workspace; ``path`` names its folder (default ``MODELHOST_HOME`` or ``~/.modelhost``)."""
        return cls(home=path)

    @property
    def url(self) -> str:
        """The control plane's base URL."""
        return self._client.url

    def get_details(self) -> dict[str, Any]:
        """What the control plane reports about the workspace (name, home, url, version, database)."""
        if self._details is None:
            self._details = dict(self._client.get("/api/v1/workspace"))
        return self._details

    @property
    def models(self) -> dict[str, Model]:
        """Latest version of every model, by name (v1 ``ws.models``)."""
        from modelhost.sdk.model import Model

        return {m.name: m for m in Model.list(self, latest=True)}

    @property
    def environments(self) -> dict[str, Environment]:
        """Latest version of every environment, by name (v1 ``ws.environments``)."""
        from modelhost.sdk.environment import Environment

        return Environment.list(self)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace.create(name='{self.name}', url='{self.url}')"
