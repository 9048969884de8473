"""Contracts: edge compatibility and run-time value checks."""

from __future__ import annotations

import numpy as np
import pytest

from clara_stream.contracts import Contract, Device, Kind, domain_matches, edge_problems, value_problems

RGB = Contract(kind=Kind.TENSOR, dtypes=("uint8",), shape=("H", "W", 3), layout="HWC", domain="video/rgb")


def test_identical_contracts_are_compatible() -> None:
    assert edge_problems(RGB, RGB) == []


@pytest.mark.parametrize(
    ("consumer", "word"),
    [
        (Contract(dtypes=("float32",), shape=("H", "W", 3), layout="HWC", domain="video/rgb"), "dtype"),
        (Contract(dtypes=("uint8",), shape=("H", "W", 3), layout="HWC", domain="volume/ct-hu"), "domain"),
        (Contract(dtypes=("uint8",), shape=("C", "H", "W"), layout="CHW", domain="video/rgb"), "layout"),
        (Contract(dtypes=("uint8",), ndim=2, domain="video/rgb"), "ndim"),
        (Contract(dtypes=("uint8",), shape=("H", "W", 4), domain="video/rgb"), "shape"),
        (Contract(kind=Kind.OBJECT, domain="video/rgb"), "kind"),
    ],
)
def test_each_mismatch_is_named(consumer: Contract, word: str) -> None:
    problems = edge_problems(RGB, consumer)
    assert problems and any(p.startswith(word) for p in problems), problems


def test_domain_wildcards() -> None:
    assert domain_matches("video/rgb", "video/*")
    assert not domain_matches("volume/ct-hu", "video/*")
    assert domain_matches("anything", None)
    assert not domain_matches(None, "video/rgb")


def test_device_mismatch_only_between_fixed_devices() -> None:
    host = Contract(device=Device.HOST)
    assert edge_problems(host, Contract(device=Device.DEVICE))
    assert edge_problems(host, Contract(device=Device.ANY)) == []


def test_object_types_checked_by_subclass() -> None:
    assert edge_problems(Contract(kind=Kind.OBJECT, pytype=bool), Contract(kind=Kind.OBJECT, pytype=int)) == []
    assert edge_problems(Contract(kind=Kind.OBJECT, pytype=int), Contract(kind=Kind.OBJECT, pytype=str))


def test_value_checks() -> None:
    ok = np.zeros((4, 5, 3), np.uint8)
    assert value_problems(ok, RGB) == []
    assert "dtype" in value_problems(ok.astype(np.float32), RGB)[0]
    assert "shape" in value_problems(np.zeros((4, 5, 4), np.uint8), RGB)[0]
    assert "array" in value_problems("not an array", RGB)[0]
    assert value_problems({"a": ok}, Contract(kind=Kind.TENSOR_MAP, dtypes=("uint8",))) == []
    missing = value_problems(ok, Contract(meta=("frame_info",)), metadata={})
    assert missing and "frame_info" in missing[0]


def test_bad_contract_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="ndim"):
        Contract(shape=("H", "W"), ndim=3)
    with pytest.raises(ValueError, match="layout"):
        Contract(shape=("H", "W"), layout="HWC")


def test_dtype_rule_is_subset_not_overlap() -> None:
    """Fails if the rule is weakened to "any overlap" (uint8|float32 → uint8 would pass) or if an
    unspecified producer dtype is accepted for a typed consumer."""
    consumer = Contract(kind=Kind.TENSOR, dtypes=("uint8",))
    mixed = Contract(kind=Kind.TENSOR, dtypes=("uint8", "float32"))
    assert [p for p in edge_problems(mixed, consumer) if p.startswith("dtype mismatch")] == [
        "dtype mismatch: producer emits uint8|float32, consumer expects uint8"]
    assert [p for p in edge_problems(Contract(kind=Kind.TENSOR), consumer) if p.startswith("dtype")] == [
        "dtype mismatch: producer dtype is unspecified, consumer expects uint8"]
    # the other way round is fine: every dtype the producer may emit is accepted
    assert edge_problems(Contract(kind=Kind.TENSOR, dtypes=("uint8",)), mixed) == []
    assert edge_problems(mixed, Contract(kind=Kind.TENSOR)) == []  # an untyped consumer takes anything


def test_contract_metadata_keys_come_from_the_vocabulary() -> None:
    from clara_stream import ports as P

    assert Contract(meta=(P.GEOMETRY, P.DICOM_SOURCE)).meta == ("geometry", "dicom_source")
    with pytest.raises(ValueError, match=r"got 'geomtry'; did you mean geometry\?"):
        Contract(meta=("geomtry",))
