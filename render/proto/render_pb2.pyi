from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_KIND_UNSPECIFIED: _ClassVar[DatasetKind]
    DATASET_KIND_VOLUME: _ClassVar[DatasetKind]
    DATASET_KIND_SLIDE: _ClassVar[DatasetKind]
    DATASET_KIND_IMAGE: _ClassVar[DatasetKind]

class ViewMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIEW_MODE_UNSPECIFIED: _ClassVar[ViewMode]
    VIEW_MODE_AXIAL: _ClassVar[ViewMode]
    VIEW_MODE_CORONAL: _ClassVar[ViewMode]
    VIEW_MODE_SAGITTAL: _ClassVar[ViewMode]
    VIEW_MODE_OBLIQUE: _ClassVar[ViewMode]
    VIEW_MODE_MIP: _ClassVar[ViewMode]
    VIEW_MODE_COMPOSITE: _ClassVar[ViewMode]
    VIEW_MODE_IMAGE: _ClassVar[ViewMode]
    VIEW_MODE_SLIDE: _ClassVar[ViewMode]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_RGB: _ClassVar[ImageFormat]
DATASET_KIND_UNSPECIFIED: DatasetKind
DATASET_KIND_VOLUME: DatasetKind
DATASET_KIND_SLIDE: DatasetKind
DATASET_KIND_IMAGE: DatasetKind
VIEW_MODE_UNSPECIFIED: ViewMode
VIEW_MODE_AXIAL: ViewMode
VIEW_MODE_CORONAL: ViewMode
VIEW_MODE_SAGITTAL: ViewMode
VIEW_MODE_OBLIQUE: ViewMode
VIEW_MODE_MIP: ViewMode
VIEW_MODE_COMPOSITE: ViewMode
VIEW_MODE_IMAGE: ViewMode
VIEW_MODE_SLIDE: ViewMode
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_RGB: ImageFormat

class Vec3(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class Point2(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Color(_message.Message):
    __slots__ = ("r", "g", "b")
    R_FIELD_NUMBER: _ClassVar[int]
    G_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    r: float
    g: float
    b: float
    def __init__(self, r: _Optional[float] = ..., g: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class Geometry(_message.Message):
    __slots__ = ("shape_zyx", "origin_mm", "spacing_mm", "direction", "has_geometry")
    SHAPE_ZYX_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_MM_FIELD_NUMBER: _ClassVar[int]
    SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    HAS_GEOMETRY_FIELD_NUMBER: _ClassVar[int]
    shape_zyx: _containers.RepeatedScalarFieldContainer[int]
    origin_mm: Vec3
    spacing_mm: Vec3
    direction: _containers.RepeatedScalarFieldContainer[float]
    has_geometry: bool
    def __init__(self, shape_zyx: _Optional[_Iterable[int]] = ..., origin_mm: _Optional[_Union[Vec3, _Mapping]] = ..., spacing_mm: _Optional[_Union[Vec3, _Mapping]] = ..., direction: _Optional[_Iterable[float]] = ..., has_geometry: _Optional[bool] = ...) -> None: ...

class Level(_message.Message):
    __slots__ = ("width", "height", "downsample")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DOWNSAMPLE_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    downsample: float
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., downsample: _Optional[float] = ...) -> None: ...

class LabelInfo(_message.Message):
    __slots__ = ("value", "name", "color")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    value: int
    name: str
    color: Color
    def __init__(self, value: _Optional[int] = ..., name: _Optional[str] = ..., color: _Optional[_Union[Color, _Mapping]] = ...) -> None: ...

class DatasetInfo(_message.Message):
    __slots__ = ("id", "name", "kind", "format", "path", "mask_path", "series_uid", "geometry", "dtype", "value_range", "levels", "tile_size", "mpp", "labels", "center_mm")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MASK_PATH_FIELD_NUMBER: _ClassVar[int]
    SERIES_UID_FIELD_NUMBER: _ClassVar[int]
    GEOMETRY_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_RANGE_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MPP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CENTER_MM_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: DatasetKind
    format: str
    path: str
    mask_path: str
    series_uid: str
    geometry: Geometry
    dtype: str
    value_range: _containers.RepeatedScalarFieldContainer[float]
    levels: _containers.RepeatedCompositeFieldContainer[Level]
    tile_size: int
    mpp: float
    labels: _containers.RepeatedCompositeFieldContainer[LabelInfo]
    center_mm: Vec3
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[DatasetKind, str]] = ..., format: _Optional[str] = ..., path: _Optional[str] = ..., mask_path: _Optional[str] = ..., series_uid: _Optional[str] = ..., geometry: _Optional[_Union[Geometry, _Mapping]] = ..., dtype: _Optional[str] = ..., value_range: _Optional[_Iterable[float]] = ..., levels: _Optional[_Iterable[_Union[Level, _Mapping]]] = ..., tile_size: _Optional[int] = ..., mpp: _Optional[float] = ..., labels: _Optional[_Iterable[_Union[LabelInfo, _Mapping]]] = ..., center_mm: _Optional[_Union[Vec3, _Mapping]] = ...) -> None: ...

class TransferPoint(_message.Message):
    __slots__ = ("value", "color", "opacity")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    value: float
    color: Color
    opacity: float
    def __init__(self, value: _Optional[float] = ..., color: _Optional[_Union[Color, _Mapping]] = ..., opacity: _Optional[float] = ...) -> None: ...

class LabelStyle(_message.Message):
    __slots__ = ("value", "color", "opacity", "hidden", "name")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    value: int
    color: Color
    opacity: float
    hidden: bool
    name: str
    def __init__(self, value: _Optional[int] = ..., color: _Optional[_Union[Color, _Mapping]] = ..., opacity: _Optional[float] = ..., hidden: _Optional[bool] = ..., name: _Optional[str] = ...) -> None: ...

class Camera(_message.Message):
    __slots__ = ("focus_mm", "zoom", "azimuth_deg", "elevation_deg")
    FOCUS_MM_FIELD_NUMBER: _ClassVar[int]
    ZOOM_FIELD_NUMBER: _ClassVar[int]
    AZIMUTH_DEG_FIELD_NUMBER: _ClassVar[int]
    ELEVATION_DEG_FIELD_NUMBER: _ClassVar[int]
    focus_mm: Vec3
    zoom: float
    azimuth_deg: float
    elevation_deg: float
    def __init__(self, focus_mm: _Optional[_Union[Vec3, _Mapping]] = ..., zoom: _Optional[float] = ..., azimuth_deg: _Optional[float] = ..., elevation_deg: _Optional[float] = ...) -> None: ...

class Plane(_message.Message):
    __slots__ = ("normal", "up")
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    normal: Vec3
    up: Vec3
    def __init__(self, normal: _Optional[_Union[Vec3, _Mapping]] = ..., up: _Optional[_Union[Vec3, _Mapping]] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("center", "width")
    CENTER_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    center: float
    width: float
    def __init__(self, center: _Optional[float] = ..., width: _Optional[float] = ...) -> None: ...

class ViewState(_message.Message):
    __slots__ = ("mode", "width", "height", "camera", "plane", "window", "transfer", "labels", "show_mask", "mask_opacity", "scale_bar", "picture_in_picture", "format", "quality", "interactive")
    MODE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SHOW_MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_OPACITY_FIELD_NUMBER: _ClassVar[int]
    SCALE_BAR_FIELD_NUMBER: _ClassVar[int]
    PICTURE_IN_PICTURE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVE_FIELD_NUMBER: _ClassVar[int]
    mode: ViewMode
    width: int
    height: int
    camera: Camera
    plane: Plane
    window: Window
    transfer: _containers.RepeatedCompositeFieldContainer[TransferPoint]
    labels: _containers.RepeatedCompositeFieldContainer[LabelStyle]
    show_mask: bool
    mask_opacity: float
    scale_bar: bool
    picture_in_picture: bool
    format: ImageFormat
    quality: int
    interactive: bool
    def __init__(self, mode: _Optional[_Union[ViewMode, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., camera: _Optional[_Union[Camera, _Mapping]] = ..., plane: _Optional[_Union[Plane, _Mapping]] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., transfer: _Optional[_Iterable[_Union[TransferPoint, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[LabelStyle, _Mapping]]] = ..., show_mask: _Optional[bool] = ..., mask_opacity: _Optional[float] = ..., scale_bar: _Optional[bool] = ..., picture_in_picture: _Optional[bool] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., interactive: _Optional[bool] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("data", "mime", "width", "height", "sequence", "provisional", "render_ms", "units_per_px", "unit", "session_id")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    RENDER_MS_FIELD_NUMBER: _ClassVar[int]
    UNITS_PER_PX_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime: str
    width: int
    height: int
    sequence: int
    provisional: bool
    render_ms: float
    units_per_px: float
    unit: str
    session_id: str
    def __init__(self, data: _Optional[bytes] = ..., mime: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., sequence: _Optional[int] = ..., provisional: _Optional[bool] = ..., render_ms: _Optional[float] = ..., units_per_px: _Optional[float] = ..., unit: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("path", "name", "mask_path", "dataset_id")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MASK_PATH_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    mask_path: str
    dataset_id: str
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ..., mask_path: _Optional[str] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetInfo]
    def __init__(self, datasets: _Optional[_Iterable[_Union[DatasetInfo, _Mapping]]] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class SaveSettingsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SaveSettingsResponse(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("dataset_id", "view")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    view: ViewState
    def __init__(self, dataset_id: _Optional[str] = ..., view: _Optional[_Union[ViewState, _Mapping]] = ...) -> None: ...

class SessionState(_message.Message):
    __slots__ = ("session_id", "dataset_id", "view")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    dataset_id: str
    view: ViewState
    def __init__(self, session_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., view: _Optional[_Union[ViewState, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetViewRequest(_message.Message):
    __slots__ = ("session_id", "view")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    view: ViewState
    def __init__(self, session_id: _Optional[str] = ..., view: _Optional[_Union[ViewState, _Mapping]] = ...) -> None: ...

class Pan(_message.Message):
    __slots__ = ("dx", "dy")
    DX_FIELD_NUMBER: _ClassVar[int]
    DY_FIELD_NUMBER: _ClassVar[int]
    dx: float
    dy: float
    def __init__(self, dx: _Optional[float] = ..., dy: _Optional[float] = ...) -> None: ...

class Zoom(_message.Message):
    __slots__ = ("factor", "anchor")
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    factor: float
    anchor: Point2
    def __init__(self, factor: _Optional[float] = ..., anchor: _Optional[_Union[Point2, _Mapping]] = ...) -> None: ...

class Rotate(_message.Message):
    __slots__ = ("dx", "dy")
    DX_FIELD_NUMBER: _ClassVar[int]
    DY_FIELD_NUMBER: _ClassVar[int]
    dx: float
    dy: float
    def __init__(self, dx: _Optional[float] = ..., dy: _Optional[float] = ...) -> None: ...

class Scroll(_message.Message):
    __slots__ = ("delta",)
    DELTA_FIELD_NUMBER: _ClassVar[int]
    delta: float
    def __init__(self, delta: _Optional[float] = ...) -> None: ...

class WindowDelta(_message.Message):
    __slots__ = ("dcenter", "dwidth")
    DCENTER_FIELD_NUMBER: _ClassVar[int]
    DWIDTH_FIELD_NUMBER: _ClassVar[int]
    dcenter: float
    dwidth: float
    def __init__(self, dcenter: _Optional[float] = ..., dwidth: _Optional[float] = ...) -> None: ...

class SetMode(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: ViewMode
    def __init__(self, mode: _Optional[_Union[ViewMode, str]] = ...) -> None: ...

class LabelChange(_message.Message):
    __slots__ = ("value", "hidden", "opacity")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    value: int
    hidden: bool
    opacity: float
    def __init__(self, value: _Optional[int] = ..., hidden: _Optional[bool] = ..., opacity: _Optional[float] = ...) -> None: ...

class Reset(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InteractRequest(_message.Message):
    __slots__ = ("session_id", "pan", "zoom", "rotate", "scroll", "window", "mode", "label", "reset", "render")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    ZOOM_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    SCROLL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    RENDER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    pan: Pan
    zoom: Zoom
    rotate: Rotate
    scroll: Scroll
    window: WindowDelta
    mode: SetMode
    label: LabelChange
    reset: Reset
    render: bool
    def __init__(self, session_id: _Optional[str] = ..., pan: _Optional[_Union[Pan, _Mapping]] = ..., zoom: _Optional[_Union[Zoom, _Mapping]] = ..., rotate: _Optional[_Union[Rotate, _Mapping]] = ..., scroll: _Optional[_Union[Scroll, _Mapping]] = ..., window: _Optional[_Union[WindowDelta, _Mapping]] = ..., mode: _Optional[_Union[SetMode, _Mapping]] = ..., label: _Optional[_Union[LabelChange, _Mapping]] = ..., reset: _Optional[_Union[Reset, _Mapping]] = ..., render: _Optional[bool] = ...) -> None: ...

class InteractResponse(_message.Message):
    __slots__ = ("state", "frame")
    STATE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    state: SessionState
    frame: Frame
    def __init__(self, state: _Optional[_Union[SessionState, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class RenderRequest(_message.Message):
    __slots__ = ("session_id", "interactive")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    interactive: bool
    def __init__(self, session_id: _Optional[str] = ..., interactive: _Optional[bool] = ...) -> None: ...

class MeasureRequest(_message.Message):
    __slots__ = ("session_id", "a", "b")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    a: Point2
    b: Point2
    def __init__(self, session_id: _Optional[str] = ..., a: _Optional[_Union[Point2, _Mapping]] = ..., b: _Optional[_Union[Point2, _Mapping]] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("distance", "unit", "distance_px", "a", "b")
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_PX_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    distance: float
    unit: str
    distance_px: float
    a: Vec3
    b: Vec3
    def __init__(self, distance: _Optional[float] = ..., unit: _Optional[str] = ..., distance_px: _Optional[float] = ..., a: _Optional[_Union[Vec3, _Mapping]] = ..., b: _Optional[_Union[Vec3, _Mapping]] = ...) -> None: ...

class TileRequest(_message.Message):
    __slots__ = ("dataset_id", "level", "x", "y", "format", "quality", "allow_provisional")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    level: int
    x: int
    y: int
    format: ImageFormat
    quality: int
    allow_provisional: bool
    def __init__(self, dataset_id: _Optional[str] = ..., level: _Optional[int] = ..., x: _Optional[int] = ..., y: _Optional[int] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., allow_provisional: _Optional[bool] = ...) -> None: ...

class RegionRequest(_message.Message):
    __slots__ = ("dataset_id", "x", "y", "width", "height", "downsample", "format", "quality", "allow_provisional")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DOWNSAMPLE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    x: float
    y: float
    width: int
    height: int
    downsample: float
    format: ImageFormat
    quality: int
    allow_provisional: bool
    def __init__(self, dataset_id: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., downsample: _Optional[float] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., allow_provisional: _Optional[bool] = ...) -> None: ...
