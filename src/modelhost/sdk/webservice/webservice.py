"""``Webservice``: v1's deployed service object (``azureml.core.webservice.Webservice``).

``Webservice(ws, name)`` is a factory, as in v1: it fetches the service and returns the subclass
for its ``computeType`` (:class:`AksWebservice`, :class:`AciWebservice`, :class:`LocalWebservice`).
Every attribute comes from ``GET /api/v1/services/<name>``; long-running calls answer with an
operation whose log :meth:`wait_for_deployment` prints live as it arrives.
"""

from __future__ import annotations

import builtins
import json
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn
from urllib.parse import quote

from modelhost.errors import ModelhostError, NotFoundError, ValidationError
from modelhost.sdk._operation import OperationTimeout, OperationWatch, operation_of
from modelhost.sdk.webservice import _messages
from modelhost.sdk.webservice._token import AksServiceAccessToken
from modelhost.sdk.webservice._view import attributes, serialized
from modelhost.spec.deployment import json_patch_from_changes

if TYPE_CHECKING:
    import httpx

    from modelhost.sdk.environment import Environment
    from modelhost.sdk.inference import InferenceConfig
    from modelhost.sdk.model import Model
    from modelhost.sdk.workspace import Workspace

__all__ = ["Webservice", "WebserviceException", "update_request"]

WebserviceException = ModelhostError
"""v1's ``azureml.exceptions.WebserviceException``: every modelhost error is one, so
``except WebserviceException`` catches what v1 code expects to catch."""

LineSink = Callable[[str], None]
SCORING_TIMEOUT_S = 310.0  # above the largest scoring_timeout_ms the router allows (300 s)
JSON_PATCH = "application/json-patch+json"
_TYPES: dict[str, type[Webservice]] = {}


def unsupported(call: str, hint: str) -> NoReturn:
    """Raise the error for a v1 call modelhost does not offer, naming the call."""
    raise ValidationError(f"{call} is not supported by modelhost", hint=hint)


def _service_path(name: str) -> str:
    return f"/api/v1/services/{quote(name, safe='')}"


def update_request(
    changes: Mapping[str, Any], model_ids: builtins.list[str] | None, code: Mapping[str, Any] | None
) -> tuple[Any, str | None]:
    """The ``PATCH /api/v1/services/<name>`` body and its content type (pure).

    Configuration only: v1's JSON patch (every non-None value, falsy ones included, so that
    ``autoscale_min_replicas=0`` is sent). New models or code (``entry_script``, ``source_directory``,
    ``snapshot``, ``environment``): ``{"changes": ..., "models"?, ...code}`` as JSON.
    """
    given = {k: v for k, v in changes.items() if v is not None}
    if model_ids is None and code is None:
        return json_patch_from_changes(given), JSON_PATCH
    body: dict[str, Any] = {"changes": given}
    if model_ids is not None:
        body["models"] = list(model_ids)
    body.update(code or {})
    return body, None


class Webservice:
    """A deployed service; use ``Webservice(ws, name)`` or what ``Model.deploy`` returns."""

    _webservice_type: ClassVar[str] = "Unknown"
    _success_label: ClassVar[str | None] = None

    # attributes set from the payload (see _view.attributes); declared for type checkers
    name: str
    state: str | None
    scoring_uri: str | None
    swagger_uri: str | None
    compute_type: str | None
    auth_enabled: bool
    token_auth_enabled: bool
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    error: Any
    model_ids: list[str]
    replicas: list[dict[str, Any]]
    num_replicas: int | None
    operation_id: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_webservice_type"):
            _TYPES[cls._webservice_type] = cls

    def __new__(
        cls, workspace: Workspace | None = None, name: str | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        if workspace is None or name is None:
            return super().__new__(cls)
        payload = Webservice._fetch(workspace, name)
        target = Webservice._class_for(payload)
        if cls is not Webservice and target is not cls:
            raise NotFoundError(
                f"WebserviceNotFound: Webservice {name} found, but it is a {payload.get('computeType')} "
                f"service, not {cls._webservice_type}",
                hint=f"Use Webservice(ws, {name!r}), which returns the matching class.",
            )
        obj = super().__new__(target)
        obj.__dict__["_prefetched"] = payload  # read back by __init__: one GET, not two
        return obj

    def __init__(self, workspace: Workspace, name: str) -> None:
        payload = self.__dict__.pop("_prefetched", None) or Webservice._fetch(workspace, name)
        self._setup(workspace, payload)

    # -- construction ----------------------------------------------------------------------------

    @staticmethod
    def _fetch(workspace: Workspace, name: str) -> dict[str, Any]:
        try:
            return dict(workspace._client.get(_service_path(name)))
        except NotFoundError as exc:
            raise NotFoundError(
                f"WebserviceNotFound: Webservice with name {name} not found in provided workspace",
                hint="List services with Webservice.list(ws) or 'modelhost service list'.",
            ) from exc

    @staticmethod
    def _class_for(payload: Mapping[str, Any]) -> type[Webservice]:
        return _TYPES.get(str(payload.get("computeType")), Webservice)

    def _setup(self, workspace: Workspace, payload: Mapping[str, Any]) -> None:
        self.workspace = workspace
        self._http: httpx.Client | None = None
        self._primary_key: str | None = None
        self._token: AksServiceAccessToken | None = None
        self._models: builtins.list[Model] | None = None
        self._environment: Environment | None = None
        self._inference_config: InferenceConfig | None = None
        self._watch: OperationWatch | None = None
        self._load(payload)

    def _load(self, payload: Mapping[str, Any]) -> None:
        self._payload = dict(payload)
        for key, value in attributes(payload).items():
            setattr(self, key, value)
        self._models = None
        self._environment = None

    @staticmethod
    def deserialize(workspace: Workspace, webservice_payload: Mapping[str, Any]) -> Webservice:
        """The object for a GET payload, of the subclass its ``computeType`` names (v1)."""
        cls = Webservice._class_for(webservice_payload)
        obj = object.__new__(cls)
        obj._setup(workspace, webservice_payload)
        return obj

    def _after_operation(self, answer: Any) -> OperationWatch | None:
        """Remember the operation a 202 answer started and load the service it carries."""
        service = answer.get("service") if isinstance(answer, Mapping) else None
        if isinstance(service, Mapping):
            self._load(service)
        op = operation_of(answer)
        if op is None:
            return None
        self._watch = OperationWatch(self.workspace._client, op)
        self.operation_id = self._watch.id
        return self._watch

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, image_id=None, "
            f"compute_type={self.compute_type}, state={self.state}, scoring_uri={self.scoring_uri}, "
            f"tags={self.tags}, properties={self.properties}, created_by={getattr(self, 'created_by', None)})"
        )

    # -- lazily fetched related objects ----------------------------------------------------------

    @property
    def models(self) -> builtins.list[Model]:
        """The deployed model versions (fetched on first use)."""
        if self._models is None:
            from modelhost.sdk.model import Model

            self._models = [Model(self.workspace, id=model_id) for model_id in self.model_ids]
        return self._models

    @property
    def environment(self) -> Environment | None:
        """The service's environment (None: it inherits the control plane's interpreter)."""
        ref = getattr(self, "environment_ref", None)
        if self._environment is None and ref and ref.get("name"):
            from modelhost.sdk.environment import Environment

            self._environment = Environment.get(self.workspace, str(ref["name"]), ref.get("version"))
        return self._environment

    # -- state -----------------------------------------------------------------------------------

    def update_deployment_state(self) -> None:
        """Refresh every attribute from the control plane (v1)."""
        self._load(Webservice._fetch(self.workspace, self.name))

    def _operation(self) -> OperationWatch | None:
        if self._watch is not None:
            return self._watch
        if self.operation_id:
            self._watch = OperationWatch.by_id(self.workspace._client, self.operation_id)
        return self._watch

    def wait_for_deployment(
        self, show_output: bool = False, timeout_sec: float | None = None, *, on_line: LineSink | None = None
    ) -> None:
        """Wait for the running operation (deploy or update); with ``show_output`` print each log
        line as it arrives. Raises v1's ``WebserviceException`` text unless it ``Succeeded``.

        ``on_line`` receives the lines instead of ``print`` (the CLI draws them itself).
        """
        watch = self._operation()
        if watch is None:
            raise ModelhostError(_messages.no_operation(self.state), hint="Call update_deployment_state().")
        sink = on_line or (lambda line: print(line, flush=True))
        if show_output and on_line is None:
            print("Running", flush=True)
        try:
            for line in watch.follow(timeout_sec):
                if show_output or on_line is not None:
                    sink(line)
        except OperationTimeout:
            raise ModelhostError(
                _messages.deployment_timed_out(float(timeout_sec or 0), watch.state),
                hint="Call wait_for_deployment() again to keep waiting.",
            ) from None
        except NotFoundError:
            # a restarted control plane forgets its operations; the service's state still tells
            self.update_deployment_state()
            if self.state == "Healthy":
                return
            raise
        self.update_deployment_state()
        if watch.state != "Succeeded":
            raise self._failure(watch)
        if on_line is None:
            print(self._success_line(), flush=True)

    def _success_line(self) -> str:
        return _messages.deployment_finished(self._success_label or self._webservice_type)

    def _failure(self, watch: OperationWatch) -> ModelhostError:
        error = watch.error_payload or {"message": f"operation {watch.state}"}
        if error.get("code") == "environment_build":
            hint = f"More information can be found here: {self.workspace.url}/api/v1/operations/{watch.id}"
        else:
            hint = "More information can be found using '.get_logs()'"
        text = _messages.deployment_failed(self.state, watch.id, hint, error)
        cause = watch.error()
        return ModelhostError(
            text,
            hint=cause.hint if cause is not None else "Read service.get_logs() and the operation log.",
            details=[*watch.lines[-50:]],
        )

    # -- scoring ---------------------------------------------------------------------------------

    def _client_http(self) -> httpx.Client:
        if self._http is None:
            import httpx

            from modelhost.sdk.ssl import scoring_verify

            # https: the workspace CA for a self-signed router, else the system trust store
            verify = scoring_verify(self.workspace, self.scoring_uri or "")
            self._http = httpx.Client(timeout=httpx.Timeout(SCORING_TIMEOUT_S, connect=10.0), verify=verify)
            weakref.finalize(self, self._http.close)
        return self._http

    def _auth_headers(self, refresh: bool = False) -> dict[str, str]:
        """The primary key, or for token auth a token (cached; fetched anew after its refresh time,
        as v1 does, or when ``refresh`` after a 401)."""
        if self.token_auth_enabled:
            token = self._token
            if token is None or refresh or time.time() >= token.refresh_after_s:
                token = self._token = self.get_access_token()
            return {"Authorization": f"Bearer {token.access_token}"}
        if not self.auth_enabled:
            return {}
        if self._primary_key is None or refresh:
            self._primary_key = self.get_keys()[0]
        return {"Authorization": f"Bearer {self._primary_key}"}

    def run(self, input_data: Any) -> Any:
        """Score ``input_data`` (v1): a str or bytes body is sent as given, anything else as JSON,
        with ``Content-Type: application/json`` and the primary key (or a token, for token auth);
        a 401 refetches the key or token and retries once. Returns the decoded JSON answer."""
        import httpx

        if not self.scoring_uri:
            raise ModelhostError(
                _messages.not_ready(self.state, self.error),
                hint="Wait for the deployment: wait_for_deployment().",
            )
        body = input_data if isinstance(input_data, str | bytes) else json.dumps(input_data)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            resp = self._client_http().post(
                self.scoring_uri, content=body, headers={**headers, **self._auth_headers()}
            )
            if resp.status_code == 401 and (self.auth_enabled or self.token_auth_enabled):
                resp = self._client_http().post(
                    self.scoring_uri, content=body, headers={**headers, **self._auth_headers(refresh=True)}
                )
        except httpx.TransportError as exc:
            raise ModelhostError(
                f"Error connecting to {self.scoring_uri}: {type(exc).__name__}: {exc}",
                hint="Check the service with update_deployment_state() and get_logs().",
            ) from exc
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError as exc:  # v1 raised the decoder's error here
                raise ModelhostError(
                    f"Service {self.name} answered 200 with a body that is not JSON: {resp.content[:200]!r}",
                    hint="run() decodes JSON answers; read other answers with an HTTP client at scoring_uri.",
                ) from exc
        raise ModelhostError(
            _messages.bad_response(resp.status_code, resp.headers, resp.content),
            hint="Read the replica's log with service.get_logs().",
        )

    # -- keys, tokens, logs ----------------------------------------------------------------------

    def get_keys(self) -> tuple[str, str]:
        """``(primary, secondary)`` key (v1)."""
        keys = self.workspace._client.post(f"{_service_path(self.name)}/listkeys")
        return str(keys["primaryKey"]), str(keys["secondaryKey"])

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """Regenerate (or set to ``set_key``) the ``Primary`` or ``Secondary`` key and wait for it."""
        kind = str(key).lower()
        if kind not in ("primary", "secondary"):
            raise ValidationError('Error, key must be one of "Primary" or "Secondary".', details=[str(key)])
        body = {"keyType": kind.capitalize(), "keyValue": set_key}
        answer = self.workspace._client.post(f"{_service_path(self.name)}/regenerateKeys", body)
        op = operation_of(answer)
        if op is not None:
            watch = OperationWatch(self.workspace._client, op)
            if watch.wait() != "Succeeded":
                error = watch.error()
                raise error or ModelhostError(
                    f"Error, key regeneration operation ended in state {watch.state}"
                )
        self._primary_key = None

    def get_token(self) -> tuple[str, datetime]:
        """v1 (deprecated there): ``(access_token, refresh_by)`` for a token-auth service;
        ``refresh_by`` is a naive local datetime, as in v1. Prefer :meth:`get_access_token`."""
        token = self.get_access_token()
        return token.access_token, token.refresh_after

    def get_access_token(self) -> AksServiceAccessToken:
        """A new token for this token-auth service (``POST /services/<name>/token``): valid for
        this service only, to be fetched again after ``refresh_after``."""
        if not self.token_auth_enabled:
            what = "key auth: use get_keys()" if self.auth_enabled else "no authentication"
            raise ValidationError(
                f"Service {self.name} uses {what}; get_token() is for services with token auth",
                hint="Enable it with update(token_auth_enabled=True, auth_enabled=False), or call "
                "update_deployment_state() if the service changed since this object was made.",
            )
        answer = self.workspace._client.post(f"{_service_path(self.name)}/token")
        return AksServiceAccessToken.from_payload(answer)

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        """The last ``num_lines`` lines of the replicas' logs (``init``: the start-up part)."""
        params = {"tail": int(num_lines), "init": "true" if init else "false"}
        return str(self.workspace._client.get(f"{_service_path(self.name)}/logs", params=params)["content"])

    # -- changes ---------------------------------------------------------------------------------

    def _send_update(
        self, changes: Mapping[str, Any], models: Any = None, inference_config: InferenceConfig | None = None
    ) -> None:
        """PATCH the service (see :func:`update_request`); does not wait (v1)."""
        client = self.workspace._client
        code: dict[str, Any] | None = None
        if inference_config is not None:
            from modelhost.sdk._code import environment_ref, upload_code

            code = dict(upload_code(client, inference_config))
            code["environment"] = environment_ref(self.workspace, inference_config, self.name)
            self._inference_config = inference_config
        model_ids = None
        if models is not None:
            from modelhost.sdk._code import model_ids_of

            model_ids = model_ids_of(models)
        body, content_type = update_request(changes, model_ids, code)
        self._after_operation(client.patch(_service_path(self.name), body, content_type=content_type))

    def update(self, *args: Any, **kwargs: Any) -> None:
        unsupported(f"{type(self).__name__}.update", "Updates apply to AKS, ACI and Local services.")

    def _wait_quietly(self, what: str) -> None:
        watch = self._watch
        if watch is not None and watch.wait() != "Succeeded":
            raise watch.error() or ModelhostError(
                f"{what} of service {self.name} ended in state {watch.state}"
            )

    def add_tags(self, tags: Mapping[str, str]) -> None:
        """Add tags (v1: an update, waited for)."""
        self._send_update({"tags": {**self.tags, **dict(tags)}})
        self._wait_quietly("Tag update")
        print("Webservice tag add operation complete.")

    def remove_tags(self, tags: Iterable[str]) -> None:
        drop = set(tags)
        self._send_update({"tags": {k: v for k, v in self.tags.items() if k not in drop}})
        self._wait_quietly("Tag update")
        print("Webservice tag remove operation complete.")

    def add_properties(self, properties: Mapping[str, str]) -> None:
        self._send_update({"properties": dict(properties)})
        self._wait_quietly("Property update")
        print("Webservice add properties operation complete.")

    def delete(self) -> None:
        """Delete the service and wait until its replicas stopped (raises if that failed)."""
        answer = self.workspace._client.delete(_service_path(self.name))
        self.state = "Deleting"
        op = operation_of(answer)
        if op is not None:
            self._watch = OperationWatch(self.workspace._client, op)
            self._wait_quietly("Deletion")

    def serialize(self) -> dict[str, Any]:
        """v1's ``serialize()`` dict."""
        return serialized(self._payload, self.workspace.name)

    # -- class-level calls -----------------------------------------------------------------------

    @staticmethod
    def list(
        workspace: Workspace,
        compute_type: str | None = None,
        image_name: str | None = None,
        image_id: str | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        tags: Any = None,
        properties: Any = None,
        image_digest: str | None = None,
    ) -> builtins.list[Webservice]:
        """Services of the workspace, filtered as v1 does.

        ``tags``/``properties``: ``'k'``, ``['k', 'v']`` items, or a ``{k: v}`` dict."""
        if image_name or image_id or image_digest:
            unsupported("Webservice.list(image_name/image_id/image_digest=...)", "modelhost has no images.")
        return [
            Webservice.deserialize(workspace, p)
            for p in Webservice._query(workspace, compute_type, model_name, model_id, tags, properties)
        ]

    @staticmethod
    def _query(
        workspace: Workspace,
        compute_type: str | None,
        model_name: str | None,
        model_id: str | None,
        tags: Any,
        properties: Any,
    ) -> builtins.list[dict[str, Any]]:
        from modelhost.sdk.model import _filters

        params: builtins.list[tuple[str, str]] = []
        if compute_type:
            params.append(("compute_type", compute_type))
        if model_id or model_name:
            params.append(("model", str(model_id or model_name)))
        params += [("tag", t) for t in _filters(tags, "tag")]
        params += [("property", p) for p in _filters(properties, "property")]
        return [dict(p) for p in workspace._client.get("/api/v1/services", params=params)["value"]]

    @staticmethod
    def check_for_existing_webservice(workspace: Workspace, name: str, overwrite: bool = False) -> None:
        """v1: raise when a service ``name`` exists and ``overwrite`` is False."""
        if overwrite:
            return
        try:
            Webservice._fetch(workspace, name)
        except NotFoundError:
            return
        from modelhost.errors import ConflictError

        raise ConflictError(
            f"Error, there is already a service with name {name} found in workspace {workspace.name}",
            hint="Pass overwrite=True to replace it, or choose another name.",
        )

    @staticmethod
    def deploy(*args: Any, **kwargs: Any) -> NoReturn:
        unsupported(
            "Webservice.deploy", "Use Model.deploy(ws, name, models, inference_config, deployment_config)."
        )

    @staticmethod
    def deploy_from_model(*args: Any, **kwargs: Any) -> NoReturn:
        unsupported(
            "Webservice.deploy_from_model", "Use Model.deploy(ws, name, models, inference_config, ...)."
        )

    @staticmethod
    def deploy_from_image(*args: Any, **kwargs: Any) -> NoReturn:
        unsupported("Webservice.deploy_from_image", "modelhost builds no images; use Model.deploy(...).")

    @staticmethod
    def deploy_local_from_model(*args: Any, **kwargs: Any) -> NoReturn:
        unsupported(
            "Webservice.deploy_local_from_model",
            "Use Model.deploy with LocalWebservice.deploy_configuration().",
        )
