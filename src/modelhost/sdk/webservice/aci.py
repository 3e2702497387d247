"""``AciWebservice``: v1's container-instance service; on modelhost, one replica behind the router
with key auth off by default (v1's ACI default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from modelhost.sdk.webservice.webservice import Webservice, unsupported
from modelhost.spec.deployment import AciDeploymentConfig

if TYPE_CHECKING:
    from modelhost.sdk.inference import InferenceConfig

__all__ = ["AciServiceDeploymentConfiguration", "AciWebservice"]

AciServiceDeploymentConfiguration = AciDeploymentConfig
"""v1's configuration class name; ``deploy_configuration(...)`` returns one."""


class AciWebservice(Webservice):
    """A service deployed with ``AciWebservice.deploy_configuration(...)`` (v1 ``AciWebservice``)."""

    _webservice_type = "ACI"

    @staticmethod
    def deploy_configuration(
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        location: str | None = None,
        auth_enabled: bool | None = None,
        ssl_enabled: bool | None = None,
        enable_app_insights: bool | None = None,
        ssl_cert_pem_file: str | None = None,
        ssl_key_pem_file: str | None = None,
        ssl_cname: str | None = None,
        dns_name_label: str | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        collect_model_data: bool | None = None,
        cmk_vault_base_url: str | None = None,
        cmk_key_name: str | None = None,
        cmk_key_version: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
    ) -> AciDeploymentConfig:
        """v1's ACI configuration, validated now (one error listing every violation)."""
        return AciDeploymentConfig.checked(**locals())

    def update(
        self,
        image: Any = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        auth_enabled: bool | None = None,
        ssl_enabled: bool | None = None,
        ssl_cert_pem_file: str | None = None,
        ssl_key_pem_file: str | None = None,
        ssl_cname: str | None = None,
        enable_app_insights: bool | None = None,
        models: Any = None,
        inference_config: InferenceConfig | None = None,
    ) -> None:
        """Change the service (v1's keyword arguments; None = unchanged); does not wait (v1)."""
        if image is not None:
            unsupported(
                "AciWebservice.update(image=...)", "Update with inference_config=InferenceConfig(...)."
            )
        changes = {
            "tags": tags,
            "properties": properties,
            "description": description,
            "auth_enabled": auth_enabled,
            "ssl_enabled": ssl_enabled,
            "ssl_cert_pem_file": ssl_cert_pem_file,
            "ssl_key_pem_file": ssl_key_pem_file,
            "ssl_cname": ssl_cname,
            "enable_app_insights": enable_app_insights,
        }
        self._send_update(changes, models, inference_config)

    def get_token(self) -> NoReturn:
        unsupported(
            "AciWebservice.get_token", "ACI services do not support token authentication; use get_keys()."
        )
