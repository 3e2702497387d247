"""v1's ``azureml.exceptions`` names over modelhost's one exception tree.

Every modelhost error is a :class:`~modelhost.errors.ModelhostError`, so v1 code that catches
``WebserviceException`` catches whatever a service call raises; ``ModelNotFoundException`` is the
model-lookup error; ``UserErrorException`` is a validation error; ``ComputeTargetException`` is
the compute-target lookup error (v1's ``try: ComputeTarget(ws, name) except ComputeTargetException:``).
"""

from modelhost.errors import ModelhostError, ModelNotFoundError, NotFoundError, ValidationError

__all__ = ["ComputeTargetException", "ModelNotFoundException", "UserErrorException", "WebserviceException"]

WebserviceException = ModelhostError
ModelNotFoundException = ModelNotFoundError
UserErrorException = ValidationError
ComputeTargetException = NotFoundError
