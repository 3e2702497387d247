"""``LocalWebservice``: v1's local (Docker) service; on modelhost, one replica process answering
directly on ``http://localhost:<port>/score``, without the router and without auth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from modelhost.errors import ValidationError
from modelhost.sdk._operation import operation_of
from modelhost.sdk.webservice.webservice import Webservice, _service_path, unsupported
from modelhost.spec.deployment import LocalDeploymentConfig

if TYPE_CHECKING:
    from modelhost.sdk.inference import InferenceConfig

__all__ = ["LocalWebservice", "LocalWebserviceDeploymentConfiguration"]

LocalWebserviceDeploymentConfiguration = LocalDeploymentConfig
"""v1's configuration class name; ``deploy_configuration(...)`` returns one."""


class LocalWebservice(Webservice):
    """A service deployed with ``LocalWebservice.deploy_configuration(port)`` (v1 ``LocalWebservice``)."""

    _webservice_type = "Local"
    _success_label = "Local"

    @staticmethod
    def deploy_configuration(port: int | None = None) -> LocalDeploymentConfig:
        """``port`` 1..65535 on localhost; None: a free port chosen at start."""
        return LocalDeploymentConfig.checked(port=port)

    def _success_line(self) -> str:
        base = (self.scoring_uri or "").rsplit("/score", 1)[0]
        return f"Local webservice is running at {base}"

    def reload(self, wait: bool = False) -> None:
        """Restart the replica with fresh copies of the entry script and source folder (no
        environment rebuild, v1). Waits for the restart whatever ``wait`` says, so that the next
        ``run()`` meets the new code."""
        config = self._inference_config
        if config is None:
            raise ValidationError(
                f"reload() needs the InferenceConfig service {self.name} was deployed with in this session",
                hint="Use service.update(inference_config=InferenceConfig(...)) and wait_for_deployment().",
            )
        from modelhost.sdk._code import upload_code

        body = upload_code(self.workspace._client, config)
        answer = self.workspace._client.post(f"{_service_path(self.name)}/reload", body)
        if operation_of(answer) is not None:
            self._after_operation(answer)
            self._wait_quietly("Reload")
        self.update_deployment_state()

    def update(
        self,
        models: Any = None,
        image_config: Any = None,
        deployment_config: LocalDeploymentConfig | None = None,
        wait: bool = False,
        inference_config: InferenceConfig | None = None,
    ) -> None:
        """Change models, code or port (v1); waits only with ``wait``."""
        if image_config is not None:
            unsupported(
                "LocalWebservice.update(image_config=...)", "Use inference_config=InferenceConfig(...)."
            )
        port = deployment_config.port if isinstance(deployment_config, LocalDeploymentConfig) else None
        self._send_update({"port": port}, models, inference_config)
        if wait:
            self.wait_for_deployment()

    def delete(
        self, delete_cache: bool = True, delete_image: bool = False, delete_volume: bool = True
    ) -> None:
        """Stop and remove the service (the flags are v1's Docker clean-up; nothing to clean here)."""
        super().delete()

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        return super().get_logs(num_lines, init)

    def get_keys(self) -> NoReturn:
        raise NotImplementedError(
            "Local webservices do not support authentication: get_keys is not available."
        )

    def regen_key(self, key: str, set_key: str | None = None) -> NoReturn:
        raise NotImplementedError(
            "Local webservices do not support authentication: regen_key is not available."
        )

    def get_token(self) -> NoReturn:
        raise NotImplementedError(
            "Local webservices do not support authentication: get_token is not available."
        )
