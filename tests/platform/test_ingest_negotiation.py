"""A sender's A-ASSOCIATE-RQ is decoded and negotiated once, then reused by its exact bytes
(``upper_layer.Negotiations``): spoken to by the hand-written SCU of ``test_fast_receive``, whose
PDUs are built with ``struct``, and the A-ASSOCIATE-AC read back byte by byte."""

from __future__ import annotations

import io
import threading

from pydicom import dcmread

from clara_stream.platform import upper_layer as ul

from .conftest import wait_until
from .test_fast_receive import EXPLICIT, IMPLICIT, RawScu, associate_rq, env, p_data, pdv, split_file, store_rq

__all__ = ["env"]  # the fixture, imported for this module's tests


def _store(scu: RawScu, cid: int, body: bytes, sop_class: str, sop_uid: str) -> int:
    scu.send(p_data(pdv(cid, store_rq(1, sop_class, sop_uid), command=True, last=True)))
    scu.send(p_data(pdv(cid, body, command=False, last=True)))
    return scu.response()["Status"]


def test_the_same_request_is_decoded_once_and_another_gets_its_own_answer(env, ct_small):
    """Two associations with the same bytes: the second decodes nothing and gets the same
    accepted context. A third from the same AE titles proposing implicit VR first must get
    implicit VR, and its instance is stored as implicit VR. Fails if the reuse is keyed on the AE
    titles or the peer (the third would get explicit VR) or if nothing is reused."""
    files = sorted(ct_small.iterdir())
    body, sop_class, sop_uid, ts = split_file(files[0])
    assert ts == EXPLICIT
    kept = env.adapter._server.negotiations
    first = RawScu(env.port)
    assert first.associate([(1, sop_class, [EXPLICIT])]) == {1: (0, EXPLICIT)}
    decoded = kept.decoded
    second = RawScu(env.port)
    assert second.associate([(1, sop_class, [EXPLICIT])]) == {1: (0, EXPLICIT)}
    assert kept.decoded == decoded  # nothing decoded for the second
    assert _store(second, 1, body, sop_class, sop_uid) == 0
    third = RawScu(env.port)
    assert third.associate([(1, sop_class, [IMPLICIT, EXPLICIT])]) == {1: (0, IMPLICIT)}
    assert kept.decoded == decoded + 1
    other = dcmread(files[1])  # re-encoded as implicit VR little endian by pydicom, the oracle
    other.file_meta.TransferSyntaxUID = IMPLICIT
    buf = io.BytesIO()
    other.save_as(buf, implicit_vr=True, little_endian=True)
    raw = buf.getvalue()
    implicit_body = raw[raw.index(b"DICM") + 4 :]
    implicit_body = implicit_body[12 + int.from_bytes(implicit_body[8:12], "little") :]  # skip group 0002
    assert _store(third, 1, implicit_body, sop_class, str(other.SOPInstanceUID)) == 0
    for scu in (first, second, third):
        scu.release()
    (row,) = env.db.query("SELECT path FROM instance WHERE sop_uid = ?", (str(other.SOPInstanceUID),))
    assert str(dcmread(row["path"]).file_meta.TransferSyntaxUID) == IMPLICIT


def test_kept_requests_are_bounded():
    """At most ``size`` requests are kept (the oldest goes first); a request over ``max_bytes``
    is never kept. Fails if the table grows with every distinct request."""
    kept = ul.Negotiations([], size=2, max_bytes=400)
    rqs = [associate_rq("INBOX", f"SCU{i}", [(1, "1.2.840.10008.1.1", [IMPLICIT])]) for i in range(3)]
    big = associate_rq("INBOX", "BIG", [(2 * i + 1, "1.2.840.10008.1.1", [IMPLICIT]) for i in range(9)])
    assert len(big) > 400 > max(len(r) for r in rqs)
    for raw in (*rqs, big, big):
        kept.request(raw)
    assert kept.decoded == 5 and len(kept._kept) == 2
    kept.request(rqs[2])  # kept: no decode
    kept.request(rqs[0])  # evicted: decoded again
    assert kept.decoded == 6
    assert kept.request(rqs[1]).calling_ae_title.strip() == "SCU1"


def test_senders_arriving_together_wait_for_one_decode(monkeypatch):
    """Four threads ask for the same request while its first decode is held inside pydicom's
    decoder: one decode, the same answer for all. Fails if concurrent arrivals each decode
    (what four storescu started together did before)."""
    real, inside, go = ul.decode_request, threading.Event(), threading.Event()

    def held(raw: bytes):
        inside.set()
        assert go.wait(60)
        return real(raw)

    monkeypatch.setattr(ul, "decode_request", held)
    kept = ul.Negotiations([])
    raw = associate_rq("INBOX", "SCU", [(1, "1.2.840.10008.1.1", [IMPLICIT])])
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(kept.request(raw))) for _ in range(4)]
    threads[0].start()
    assert inside.wait(60)
    for t in threads[1:]:
        t.start()
    wait_until(lambda: sum(t.is_alive() for t in threads) == 4, "four threads waiting")
    go.set()
    for t in threads:
        t.join(60)
    assert kept.decoded == 1 and len(got) == 4 and all(g is got[0] for g in got)


def test_an_ae_edit_applies_from_the_next_association(env, ct_small):
    """The called AE's config is read once per association: after allowedSopClasses is narrowed
    to MR, the open association still stores CT, a new one is refused (0x0122, SOP class not
    supported). Fails if the config is kept beyond its association (the new one would store) or
    the per-association read is lost (then the edit would refuse the open one too: the old rule)."""
    files = sorted(ct_small.iterdir())
    (b0, cls, uid0, ts), (b1, _, uid1, _), (b2, _, uid2, _) = (split_file(f) for f in files[:3])
    scu = RawScu(env.port)
    scu.associate([(1, cls, [ts])])
    assert _store(scu, 1, b0, cls, uid0) == 0
    ae = env.config.ae_by_title("INBOX")
    env.config.update("ae", ae.model_copy(update={"allowed_sop_classes": ["1.2.840.10008.5.1.4.1.1.4"]}))
    assert _store(scu, 1, b1, cls, uid1) == 0
    scu.release()
    late = RawScu(env.port)
    late.associate([(1, cls, [ts])])
    assert _store(late, 1, b2, cls, uid2) == 0x0122
    late.release()
    assert {r["sop_uid"] for r in env.db.query("SELECT sop_uid FROM instance")} == {uid0, uid1}


def test_a_request_whose_decode_fails_unexpectedly_is_refused_every_time(monkeypatch):
    """A decode error outside the expected ones (here OverflowError) is kept as the request's
    error: the same bytes again are refused by name. Fails if the kept entry stays empty
    (the second arrival got no request and no error: an AttributeError in the SCP)."""

    def broken(raw: bytes):
        raise OverflowError("length out of range")

    monkeypatch.setattr(ul, "decode_request", broken)
    kept = ul.Negotiations([])
    raw = associate_rq("INBOX", "SCU", [(1, "1.2.840.10008.1.1", [IMPLICIT])])
    for _ in range(2):
        try:
            kept.request(raw)
        except ul.UpperLayerError as exc:
            assert "OverflowError" in str(exc)
        else:
            raise AssertionError("a request that cannot be decoded must be refused")
    assert kept.decoded == 1
