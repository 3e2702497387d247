"""v1's ``azureml.core.webservice``: ``Webservice`` and its AKS, ACI and Local kinds.

``from azureml.core.webservice import AciWebservice, AksWebservice, LocalWebservice, Webservice``
becomes ``from modelhost.sdk.webservice import ...``; the submodules ``aks``, ``aci``, ``local`` and
``webservice`` mirror v1's.
"""

from modelhost.sdk.webservice.aci import AciServiceDeploymentConfiguration, AciWebservice
from modelhost.sdk.webservice.aks import (
    AksEndpoint,
    AksServiceDeploymentConfiguration,
    AksWebservice,
    AutoScaler,
    ContainerResourceRequirements,
    DataCollection,
    LivenessProbeRequirements,
)
from modelhost.sdk.webservice.local import LocalWebservice, LocalWebserviceDeploymentConfiguration
from modelhost.sdk.webservice.webservice import Webservice, WebserviceException

__all__ = [
    "AciServiceDeploymentConfiguration",
    "AciWebservice",
    "AksEndpoint",
    "AksServiceDeploymentConfiguration",
    "AksWebservice",
    "AutoScaler",
    "ContainerResourceRequirements",
    "DataCollection",
    "LivenessProbeRequirements",
    "LocalWebservice",
    "LocalWebserviceDeploymentConfiguration",
    "Webservice",
    "WebserviceException",
]
