"""``/config/ae``, ``/config/source``, ``/config/destination``: MIG-style CRUD (+ C-ECHO)."""
# No "from __future__ import annotations": the CRUD factory passes models to FastAPI at runtime.

from fastapi import APIRouter, Depends, status

from clara_stream.platform import scu
from clara_stream.platform.api.deps import get_service
from clara_stream.platform.schemas import AeConfig, DestinationConfig, EchoResult, SourceConfig
from clara_stream.platform.service import PlatformService
from clara_stream.platform.status import InvalidRequestError, PeerError

router = APIRouter(prefix="/config", tags=["config"])


def _crud(kind: str, model: type) -> None:
    path = f"/{kind}"

    @router.get(path, response_model=list[model], name=f"list_{kind}")
    def list_items(svc: PlatformService = Depends(get_service)):
        return svc.config.list(kind)

    @router.get(path + "/{name}", response_model=model, name=f"get_{kind}")
    def get_item(name: str, svc: PlatformService = Depends(get_service)):
        return svc.config.get(kind, name)

    @router.post(path, response_model=model, status_code=status.HTTP_201_CREATED, name=f"create_{kind}")
    def create_item(item: model, svc: PlatformService = Depends(get_service)):  # type: ignore[valid-type]
        return svc.config.create(kind, item)

    @router.put(path, response_model=model, name=f"update_{kind}_by_body")
    def update_by_body(item: model, svc: PlatformService = Depends(get_service)):  # type: ignore[valid-type]
        """MIG's form: the body's ``name`` says which entity to replace."""
        return svc.config.update(kind, item)

    @router.put(path + "/{name}", response_model=model, name=f"update_{kind}")
    def update_item(name: str, item: model, svc: PlatformService = Depends(get_service)):  # type: ignore[valid-type]
        if item.name != name:
            raise InvalidRequestError(f"name: expected {name!r} as in the URL; got {item.name!r}")
        return svc.config.update(kind, item)

    @router.delete(path + "/{name}", response_model=model, name=f"delete_{kind}")
    def delete_item(name: str, svc: PlatformService = Depends(get_service)):
        return svc.config.delete(kind, name)


_crud("ae", AeConfig)
_crud("source", SourceConfig)
_crud("destination", DestinationConfig)


@router.get("/destination/cecho/{name}", response_model=EchoResult, tags=["config"])
def cecho(name: str, svc: PlatformService = Depends(get_service)) -> EchoResult:
    """C-ECHO the named destination; 200 with success, or 502 naming why the peer failed."""
    dest = svc.config.destination(name)
    code = scu.echo(dest.host_ip, dest.port, dest.ae_title, calling_ae=svc.settings.ae_title)
    if code != 0:
        raise PeerError(f"C-ECHO {name}: expected status 0x0000; got 0x{code:04X}")
    return EchoResult(name=name, success=True, status=code, detail=f"{dest.ae_title}@{dest.host_ip}:{dest.port}")
