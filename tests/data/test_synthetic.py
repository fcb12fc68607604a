import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label

from data.errors import DatasetError
from data.imread import read_label, read_rgb
from data.labels import LABEL_ID
from data.synthetic import draw_scene, parse_size, synthetic_paths, write_synthetic_cityscapes


def test_tree_layout_is_cityscapes(synth_root):
    for split in ("train", "val"):
        images = sorted((synth_root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        labels = sorted((synth_root / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
        assert len(images) == len(labels) == 4
        for img, lab in zip(images, labels):
            assert img.parent.name == lab.parent.name  # city folder
            city, seq, frame, _ = img.name.split("_")
            assert city == img.parent.name and len(seq) == 6 and len(frame) == 6
            assert lab.name == f"{city}_{seq}_{frame}_gtFine_labelIds.png"
            inst = lab.with_name(lab.name.replace("labelIds", "instanceIds"))
            assert inst.is_file()
    assert not list(synth_root.rglob(".*"))  # atomic writes leave no temporary (hidden) files


def test_instance_ids_agree_with_labels(synth_root):
    for lab_path in (synth_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"):
        labels = read_label(lab_path)
        inst = cv2.imread(str(lab_path).replace("labelIds", "instanceIds"), cv2.IMREAD_UNCHANGED)
        assert inst.dtype == np.uint16 and inst.shape == labels.shape
        things = inst >= 1000  # Cityscapes: labelId * 1000 + instance number
        assert np.array_equal(inst[~things], labels[~things])
        assert np.array_equal(inst[things] // 1000, labels[things])
        assert set(np.unique(labels[things])) <= {LABEL_ID[c] for c in ("person", "rider", "car", "bicycle")}


def test_scene_is_deterministic_and_seed_dependent():
    a_img, a_lab = draw_scene(size=(96, 192), seed=(5, 0, 1))
    b_img, b_lab = draw_scene(size=(96, 192), seed=(5, 0, 1))
    c_img, c_lab = draw_scene(size=(96, 192), seed=(6, 0, 1))
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def test_image_does_not_depend_on_how_many_are_written(tmp_path):
    write_synthetic_cityscapes(out=tmp_path / "a", n=1, size=(64, 128), seed=2, splits=("train",))
    write_synthetic_cityscapes(out=tmp_path / "b", n=3, size=(64, 128), seed=2, splits=("train",))
    pa, pb = synthetic_paths(tmp_path / "a", "train", 0), synthetic_paths(tmp_path / "b", "train", 0)
    assert pa[0].read_bytes() == pb[0].read_bytes() and pa[1].read_bytes() == pb[1].read_bytes()


def test_scenes_hold_the_street_classes_and_only_official_ids():
    seen = set()
    for i in range(6):
        image, labels = draw_scene(size=(256, 512), seed=(0, 0, i))
        assert image.shape == (256, 512, 3) and image.dtype == np.uint8
        assert labels.shape == (256, 512) and labels.dtype == np.uint8
        values = set(np.unique(labels).tolist())
        assert values <= set(id2label)
        seen |= values
    for name in ("sky", "road", "sidewalk", "building", "vegetation", "pole", "traffic sign", "car", "person"):
        assert LABEL_ID[name] in seen, name


def test_scenes_are_not_a_colour_lookup():
    """Within one class the colour varies (texture, lighting): a per-class colour table cannot solve it."""
    image, labels = draw_scene(size=(256, 512), seed=(0, 0, 0))
    road = image[labels == LABEL_ID["road"]].astype(float)
    assert road.std(axis=0).min() > 5.0


def test_files_read_back(synth_root):
    img_path, lab_path = synthetic_paths(synth_root, "val", 1)
    assert read_rgb(img_path).shape == (128, 256, 3)
    assert read_label(lab_path).shape == (128, 256)


@pytest.mark.parametrize("text", ["10x10", "2048x2048", "abc", "128"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(DatasetError, match="size"):
        parse_size(text)


def test_full_resolution_is_allowed():
    assert parse_size("1024x2048") == (1024, 2048)


def test_colour_alone_does_not_solve_it():
    """A per-pixel colour classifier (one Gaussian per class, fitted on train scenes) scores a
    low mIoU on val scenes: telling classes apart needs shape and context, as on real streets."""
    from data.labels import labelid_to_trainid_lut

    lut = labelid_to_trainid_lut()

    def pixels(split, n):
        pairs = [draw_scene(size=(96, 192), seed=(11, split, i)) for i in range(n)]
        return (np.concatenate([img.reshape(-1, 3) for img, _ in pairs]).astype(np.float64),
                np.concatenate([lut[lab].ravel() for _, lab in pairs]))

    x_train, y_train = pixels(0, 12)
    x_val, y_val = pixels(1, 6)
    classes = [c for c in range(19) if (y_train == c).sum() > 50]
    scores = []
    for c in classes:
        xc = x_train[y_train == c]
        mean, cov = xc.mean(0), np.cov(xc.T) + 1e-2 * np.eye(3)
        d = x_val - mean
        maha = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
        scores.append(-0.5 * maha - 0.5 * np.log(np.linalg.det(cov)) + np.log((y_train == c).mean()))
    pred = np.array(classes)[np.argmax(np.stack(scores, 1), 1)]
    valid = y_val != 255
    ious = [((pred == c) & (y_val == c) & valid).sum() / (((pred == c) | (y_val == c)) & valid).sum()
            for c in classes if (y_val == c).any()]
    assert len(ious) >= 8
    assert np.mean(ious) < 0.4  # measured ~0.2
