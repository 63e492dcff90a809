"""Layout errors of the dataset readers on tiny misplaced trees: the missing part, where it is, and the fix.

Each tree sits below ``tmp_path / "data"``, so the nearest-match search, which
also looks in the folders next to the data root, finds only this test's files.
"""

from __future__ import annotations

import shutil

import pytest

from fergen.errors import DataError

from .trees import fer_row, make_bu3dfe, make_ckplus, make_jaffe, make_kdef, open_faces, touch, write_fer2013, \
    write_pattern


def layout_error(data_root, **faces) -> list[str]:
    """Open ``faces`` against ``data_root``, read its index and return the lines of the DataError raised."""
    source = open_faces(data_root, **faces)
    with pytest.raises(DataError) as error:
        source.index()
    return str(error.value).splitlines()


def test_ckplus_unpacked_zips(tmp_path):
    data = tmp_path / "data"
    unpacked = make_ckplus(tmp_path / "unpacked", [("S005", "001", 3, 5.0)], landmarks=False)
    (data / "CK+" / "extended-cohn-kanade-images").mkdir(parents=True)
    (data / "CK+" / "Emotion_labels").mkdir()
    (unpacked / "cohn-kanade-images").rename(data / "CK+" / "extended-cohn-kanade-images" / "cohn-kanade-images")
    (unpacked / "Emotion").rename(data / "CK+" / "Emotion_labels" / "Emotion")

    lines = layout_error(data, kind="ckplus", path="CK+")

    assert lines[0] == f"faces.path: folder {data / 'CK+'} does not have the CK+ layout:"
    assert lines[1] == ("  - CK+/cohn-kanade-images not found. Found the CK+ frames in "
                        "CK+/extended-cohn-kanade-images/cohn-kanade-images. "
                        "Move that folder to CK+/cohn-kanade-images.")
    assert lines[2] == ("  - CK+/Emotion not found. Found the emotion files in CK+/Emotion_labels/Emotion. "
                        "Move that folder to CK+/Emotion.")
    assert lines[3] == "Expected layout:"
    assert lines[4] == f"    {data / 'CK+'}/cohn-kanade-images/S005/001/S005_001_00000011.png"
    assert len(lines) == 7


def test_ckplus_emotion_missing(tmp_path):
    data = tmp_path / "data"
    make_ckplus(data / "CK+", [("S005", "001", 3, None)], landmarks=False)

    lines = layout_error(data, kind="ckplus", path="CK+")

    assert lines[0] == f"faces.path: folder {data / 'CK+'} does not have the CK+ layout:"
    assert lines[1] == ("  - CK+/Emotion not found. A search below CK+ found no emotion files "
                        "(S005_001_00000011_emotion.txt) either. Unpack the CK+ emotion labels into CK+/Emotion.")
    assert lines[2] == "Expected layout:"
    assert lines[-1] == "Check 'faces.path' and --data-root (or FERGEN_DATA_ROOT)."


def test_ckplus_frames_not_nested(tmp_path):
    data = tmp_path / "data"
    root = make_ckplus(data / "CK+", [("S005", "001", 3, 5.0)], landmarks=False)
    images = root / "cohn-kanade-images"
    for frame in sorted(images.rglob("*.png")):
        frame.rename(images / frame.name)
    shutil.rmtree(images / "S005")

    lines = layout_error(data, kind="ckplus", path="CK+")

    assert lines[0] == f"faces.path: folder {root} does not have the CK+ layout:"
    assert lines[1] == ("  - CK+/cohn-kanade-images/S005_001_00000001.png is not nested as expected. It belongs at "
                        "CK+/cohn-kanade-images/S005/001/S005_001_00000001.png. Move it there, and each file like it "
                        "to the place its name gives.")
    assert lines[2] == "Expected layout:"
    assert not lines[-1].startswith("Check")


def test_ckplus_subject_folders_directly_in_dataset_folder(tmp_path):
    data = tmp_path / "data"
    root = make_ckplus(data / "CK+", [("S005", "001", 3, 5.0)], landmarks=False)
    (root / "cohn-kanade-images" / "S005").rename(root / "S005")
    (root / "cohn-kanade-images").rmdir()

    lines = layout_error(data, kind="ckplus", path="CK+")

    assert lines[1] == ("  - CK+/cohn-kanade-images not found. Found the CK+ frames directly in CK+, such as "
                        "CK+/S005/001/S005_001_00000001.png. Move them into CK+/cohn-kanade-images.")
    assert lines[2] == "Expected layout:"


def test_ckplus_hint_inside_data_root(tmp_path):
    data = tmp_path / "data"
    make_ckplus(data / "download" / "CK+", [("S005", "001", 3, 5.0)], landmarks=False)

    lines = layout_error(data, kind="ckplus", path="download")

    assert lines[0] == f"faces.path: folder {data / 'download'} does not have the CK+ layout:"
    assert lines[1] == ("  - download/cohn-kanade-images not found. Found the CK+ frames in "
                        "download/CK+/cohn-kanade-images.")
    assert lines[2] == "  - download/Emotion not found. Found the emotion files in download/CK+/Emotion."
    assert lines[-1] == "The nearest match is download/CK+ in the data root, so set 'faces.path: download/CK+'."


def test_ckplus_hint_outside_data_root(tmp_path):
    data = tmp_path / "data"
    make_ckplus(data / "CK+", [("S005", "001", 3, 5.0)], landmarks=False)
    (data / "wrong1").mkdir()

    lines = layout_error(data / "wrong1", kind="ckplus", path="CK+")

    assert lines[0] == f"faces.path: folder {data / 'wrong1' / 'CK+'} not found."
    assert lines[-1] == (f"The nearest match is {data / 'CK+'}, outside the data root {data / 'wrong1'}. "
                         f"Run with --data-root {data} (or set FERGEN_DATA_ROOT={data}), "
                         "and the recipe's 'faces.path: CK+' finds it.")


def test_ckplus_hint_outside_data_root_other_name(tmp_path):
    data = tmp_path / "data"
    make_ckplus(data / "CK+", [("S005", "001", 3, 5.0)], landmarks=False)

    lines = layout_error(data / "CK+" / "Emotion", kind="ckplus", path="ckplus")

    assert lines[-1] == (f"The nearest match is {data / 'CK+'}, outside the data root {data / 'CK+' / 'Emotion'}. "
                         f"Run with --data-root {data} (or set FERGEN_DATA_ROOT={data}) and set 'faces.path: CK+'.")


def test_bu3dfe_subject_folders_one_level_down(tmp_path):
    data = tmp_path / "data"
    make_bu3dfe(data / "BU-3DFE" / "F2D", ["F0001"])

    lines = layout_error(data, kind="bu3dfe", path="BU-3DFE")

    assert lines[0] == f"faces.path: folder {data / 'BU-3DFE'} does not have the BU-3DFE layout:"
    assert lines[1] == ("  - BU-3DFE contains no subject folders with 2D images such as "
                        "BU-3DFE/F0001/F0001_AN04WH_F2D.bmp. Found the subject folders with 2D images in BU-3DFE/F2D.")
    assert lines[-1] == "The nearest match is BU-3DFE/F2D in the data root, so set 'faces.path: BU-3DFE/F2D'."


def test_bu3dfe_subject_folders_without_images(tmp_path):
    data = tmp_path / "data"
    (data / "BU-3DFE" / "F0001").mkdir(parents=True)

    lines = layout_error(data, kind="bu3dfe", path="BU-3DFE")

    assert lines[1] == ("  - BU-3DFE contains no subject folders with 2D images such as "
                        "BU-3DFE/F0001/F0001_AN04WH_F2D.bmp.")
    assert lines[-1] == "Check 'faces.path' and --data-root (or FERGEN_DATA_ROOT)."


def test_kdef_images_without_session_folders(tmp_path):
    data = tmp_path / "data"
    root = make_kdef(data / "KDEF", ["AF01ANS.JPG", "BM12HAS.JPG"])
    for image in sorted(root.rglob("*.JPG")):
        image.rename(root / image.name)
        image.parent.rmdir()

    lines = layout_error(data, kind="kdef", path="KDEF")

    assert lines[0] == f"faces.path: folder {root} does not have the KDEF layout:"
    assert lines[1] == ("  - KDEF/AF01ANS.JPG is not nested as expected. It belongs at KDEF/AF01/AF01ANS.JPG. "
                        "Move it there, and each file like it to the place its name gives.")
    assert lines[2] == "Expected layout:"


def test_kdef_folder_inside_download(tmp_path):
    data = tmp_path / "data"
    make_kdef(data / "KDEF_and_AKDEF" / "KDEF", ["AF01ANS.JPG"])

    lines = layout_error(data, kind="kdef", path="KDEF")

    assert lines[0] == f"faces.path: folder {data / 'KDEF'} not found."
    assert lines[2] == f"    {data / 'KDEF'}/AF01/AF01ANS.JPG   (session A/B, gender F/M, id, expression AF AN DI HA " \
                       "NE SA SU, angle FL HL S HR FR)"
    assert lines[-1] == ("The nearest match is KDEF_and_AKDEF/KDEF in the data root, "
                         "so set 'faces.path: KDEF_and_AKDEF/KDEF'.")


def test_jaffe_images_one_level_down(tmp_path):
    data = tmp_path / "data"
    make_jaffe(data / "jaffedbase" / "jaffe", ["KA.AN1.39.tiff"])

    lines = layout_error(data, kind="jaffe", path="jaffedbase")

    assert lines[1] == ("  - jaffedbase contains no JAFFE images such as jaffedbase/KA.AN1.39.tiff. "
                        "Found the JAFFE images in jaffedbase/jaffe.")
    assert lines[-1] == "The nearest match is jaffedbase/jaffe in the data root, so set 'faces.path: jaffedbase/jaffe'."


def test_rafdb_label_file_missing_and_images_misplaced(tmp_path):
    data = tmp_path / "data"
    root = data / "RAF-DB" / "basic"
    write_pattern(root, "aligned/train_00001_aligned.jpg")
    (root / "Image").mkdir()

    lines = layout_error(data, kind="rafdb", path="RAF-DB/basic")

    assert lines[0] == f"faces.path: folder {root} does not have the RAF-DB layout:"
    assert lines[1] == ("  - RAF-DB/basic/EmoLabel not found. A search below RAF-DB/basic found no label file "
                        "(list_patition_label.txt) either. Put RAF-DB's list_patition_label.txt in "
                        "RAF-DB/basic/EmoLabel.")
    assert lines[2] == ("  - RAF-DB/basic/Image/aligned not found. Found the aligned images in RAF-DB/basic/aligned. "
                        "Move that folder to RAF-DB/basic/Image/aligned.")
    assert lines[3] == "Expected layout:"
    assert not lines[-1].startswith("Check")


def test_rafdb_label_file_next_to_image_folder(tmp_path):
    data = tmp_path / "data"
    root = data / "basic"
    touch(root, "list_patition_label.txt", "train_00001.jpg 4\n")
    write_pattern(root, "Image/aligned/train_00001_aligned.jpg")

    assert open_faces(data, kind="rafdb", path="basic").index().labels.tolist() == ["happy"]


def test_fer2013_missing_column_names_other_csv(tmp_path):
    data = tmp_path / "data"
    write_fer2013(data / "fer" / "train.csv", [("0", "1 2 3")], header="emotion,pixels")
    write_fer2013(data / "fer" / "icml_face_data.csv", [fer_row(0, 1, "Training")], header="emotion, Usage, pixels")

    lines = layout_error(data, kind="fer2013", path="fer/train.csv")

    assert lines[0] == f"faces.path: folder {data / 'fer'} does not have the FER2013 layout:"
    assert lines[1] == ("  - fer/train.csv is missing the column Usage. Its header is 'emotion,pixels', and FER2013 "
                        "needs the columns emotion, pixels and Usage in any order.")
    assert lines[-1] == ("The nearest match is fer/icml_face_data.csv in the data root, "
                         "so set 'faces.path: fer/icml_face_data.csv'.")


def test_fer2013_csv_one_level_down(tmp_path):
    data = tmp_path / "data"
    write_fer2013(data / "fer2013" / "fer2013" / "fer2013.csv", [fer_row(0, 1, "Training")])

    lines = layout_error(data, kind="fer2013", path="fer2013")

    assert lines[1] == "  - fer2013/fer2013.csv not found."
    assert lines[3] == f"    {data / 'fer2013' / 'fer2013.csv'}   (header emotion,pixels,Usage)"
    assert lines[-1] == "The nearest match is fer2013/fer2013 in the data root, so set 'faces.path: fer2013/fer2013'."
