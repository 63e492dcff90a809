"""JAFFE and KDEF readers on tiny trees with the datasets' file names."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from .trees import make_jaffe, make_kdef, open_faces, pattern_image, touch, write_pattern

JAFFE_NAMES = ["KA.AN1.39.tiff", "KA.NE1.26.tiff", "KA.HA2.30.tiff", "KL.SU1.164.tiff", "KL.FE3.176.tiff",
               "YM.DI1.58.tiff", "YM.SA2.56.TIFF"]


def test_jaffe_labels_subjects_and_codes(tmp_path):
    root = make_jaffe(tmp_path / "jaffedbase", JAFFE_NAMES)
    touch(root, "jaffe_semantic_ratings.txt", "N HAP SAD SUR ANG DIS FEA PIC\n1 2.87 2.52 2.10 1.97 1.97 2.06 KM-NE1\n")
    write_pattern(root, "KA.AN1.tiff")
    write_pattern(root, "README.tiff")
    source = open_faces(tmp_path, kind="jaffe", path="jaffedbase")
    index = source.index()

    assert len(index) == 7
    assert dict(zip(index.ids.tolist(), index.labels.tolist())) == {
        "KA.AN1.39.tiff": "anger", "KA.HA2.30.tiff": "happy", "KA.NE1.26.tiff": "neutral",
        "KL.FE3.176.tiff": "fear", "KL.SU1.164.tiff": "surprise", "YM.DI1.58.tiff": "disgust",
        "YM.SA2.56.TIFF": "sadness"}
    assert Counter(index.subjects.tolist()) == {"KA": 3, "KL": 2, "YM": 2}
    assert source.unmatched == ["KA.AN1.tiff (name does not match KA.AN1.39.tiff)",
                                "README.tiff (name does not match KA.AN1.39.tiff)"]
    assert index.stats["other_files"] == 1
    record = source.records()[0]
    assert record.code == "AN"
    assert record.meta == {"number": 39, "take": 1}
    assert np.array_equal(source.load_image(record), pattern_image("KA.AN1.39.tiff"))


KDEF_NAMES = ["AF01ANS.JPG", "AF01ANHL.JPG", "AF01AFS.JPG", "AF01NES.JPG", "BF01HAS.JPG", "BF01SUFR.JPG",
              "AM12DIS.JPG", "AM12SAS.JPG", "BM12SAFL.JPG"]


@pytest.fixture
def kdef(tmp_path):
    root = make_kdef(tmp_path / "KDEF", KDEF_NAMES)
    write_pattern(root, "AF01/AF02HAS.JPG")
    write_pattern(root, "AM12/AM12XXS.JPG")
    return root


def test_kdef_frontal_by_default(kdef):
    source = open_faces(kdef.parent, kind="kdef", path="KDEF")
    index = source.index()

    assert index.ids.tolist() == ["AF01/AF01AFS.JPG", "AF01/AF01ANS.JPG", "AF01/AF01NES.JPG", "AM12/AM12DIS.JPG",
                                  "AM12/AM12SAS.JPG", "BF01/BF01HAS.JPG"]
    assert index.labels.tolist() == ["fear", "anger", "neutral", "disgust", "sadness", "happy"]
    assert index.subjects.tolist() == ["F01", "F01", "F01", "M12", "M12", "F01"]
    assert index.codes.tolist() == ["AF", "AN", "NE", "DI", "SA", "HA"]


def test_kdef_angles_and_sessions(kdef):
    source = open_faces(kdef.parent, kind="kdef", path="KDEF", angles=["HL", "FL", "FR"], sessions=["B"])
    records = source.records()

    assert [record.id for record in records] == ["BF01/BF01SUFR.JPG", "BM12/BM12SAFL.JPG"]
    assert records[0].meta == {"angle": "FR", "gender": "F", "session": "B"}


def test_kdef_unmatched(kdef):
    source = open_faces(kdef.parent, kind="kdef", path="KDEF")
    source.index()

    assert source.unmatched == ["AF01/AF02HAS.JPG (file of AF02 in folder AF01)",
                                "AM12/AM12XXS.JPG (name does not match AF01/AF01ANS.JPG)"]
