"""Tests of enas.data.data_utils / enas.data.data_utils_cifar on tiny files in the official formats."""

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from enas.data import data_common, data_utils, data_utils_cifar
from enas.data.data_utils import (
    DataSplits,
    load_dataset,
    load_mnist,
    make_dataset,
    read_mnist,
)
from enas.data.data_utils_cifar import load_cifar10, read_cifar10
from enas.errors import DataError
from tests.fixtures_data import (
    write_cifar_batches,
    write_cifar_tar_gz,
    write_mnist_idx,
    write_mnist_npz,
)

OFFICIAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
UNREACHABLE = "http://127.0.0.1:9/nothing-here"  # discard port: connection refused at once


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.fixture
def no_network(monkeypatch):
    """Make every download attempt fail fast, with or without a real network."""
    monkeypatch.setattr(data_utils, "MNIST_URL", UNREACHABLE)
    monkeypatch.setattr(data_utils_cifar, "CIFAR_URL", UNREACHABLE)
    monkeypatch.setattr(data_common, "DOWNLOAD_TIMEOUT", 5.0)


# ------------------------------------------------------------------------------------ MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_read_mnist_idx(tmp_path, gz):
    (x_tr, y_tr), (x_te, y_te) = write_mnist_idx(tmp_path, 12, 5, gzip=gz, seed=1)
    (a_tr, b_tr), (a_te, b_te) = read_mnist(tmp_path, download=False)
    assert a_tr.shape == (12, 28, 28) and a_te.shape == (5, 28, 28)
    assert a_tr.dtype == np.uint8 and b_tr.dtype == np.uint8
    np.testing.assert_array_equal(a_tr, x_tr)
    np.testing.assert_array_equal(b_tr, y_tr)
    np.testing.assert_array_equal(a_te, x_te)
    np.testing.assert_array_equal(b_te, y_te)


def test_read_mnist_npz(tmp_path):
    (x_tr, y_tr), (x_te, y_te) = write_mnist_npz(tmp_path, 9, 4, seed=2)
    (a_tr, b_tr), (a_te, b_te) = read_mnist(tmp_path, download=False)
    np.testing.assert_array_equal(a_tr, x_tr)
    np.testing.assert_array_equal(b_tr, y_tr)
    np.testing.assert_array_equal(a_te, x_te)
    np.testing.assert_array_equal(b_te, y_te)


def test_load_mnist_shapes_and_dtypes(tmp_path):
    write_mnist_idx(tmp_path, 20, 6)
    d = load_mnist(tmp_path, num_valid=5, download=False)
    assert isinstance(d, DataSplits) and d.name == "mnist" and d.num_classes == 10
    assert d.x_train.shape == (15, 28, 28, 1) and d.x_valid.shape == (5, 28, 28, 1)
    assert d.x_test.shape == (6, 28, 28, 1) and d.image_shape == (28, 28, 1)
    for x in (d.x_train, d.x_valid, d.x_test):
        assert x.dtype == np.uint8  # raw pixels: the network normalises its input
    for y in (d.y_train, d.y_valid, d.y_test):
        assert y.dtype == np.int32
    assert d.mean.shape == (1,) and d.std.shape == (1,) and d.mean.dtype == np.float32
    assert d.std.dtype == np.float32 and d.pixels == "uint8" and d.class_names == tuple("0123456789")
    # the split objects hold the same arrays, in memory
    assert d.train.in_memory and d.train.images is d.x_train and d.test.labels is d.y_test


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_names_file(tmp_path, gz):
    write_mnist_idx(tmp_path, 10, 4, gzip=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError) as e:
        read_mnist(tmp_path, download=False)
    assert name in _one_line(e) and "truncated" in str(e.value)


def test_wrong_magic_names_file(tmp_path):
    write_mnist_idx(tmp_path, 10, 4, gzip=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 0x03  # 2049 -> 2051
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e:
        read_mnist(tmp_path, download=False)
    msg = _one_line(e)
    assert "t10k-labels-idx1-ubyte" in msg and "2051" in msg and "2049" in msg


def test_count_mismatch(tmp_path):
    write_mnist_idx(tmp_path, 10, 4)
    write_mnist_idx(tmp_path / "other", 7, 4)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        (tmp_path / "other" / "train-labels-idx1-ubyte.gz").read_bytes()
    )
    with pytest.raises(DataError) as e:
        read_mnist(tmp_path, download=False)
    assert "10 images but 7 labels" in _one_line(e)


def test_corrupt_npz(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError) as e:
        read_mnist(tmp_path, download=False)
    assert "mnist.npz" in _one_line(e)


def test_incomplete_idx_set(tmp_path):
    write_mnist_idx(tmp_path, 5, 2)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        read_mnist(tmp_path, download=False)
    msg = _one_line(e)
    assert "t10k-images-idx3-ubyte" in msg and "--data_path" in msg


def test_missing_mnist_download_fails_cleanly(tmp_path, no_network, capsys):
    missing = tmp_path / "nowhere" / "mnist"
    with pytest.raises(DataError) as e:
        load_mnist(missing, download=True)
    out, err = capsys.readouterr()
    # Keras' "Downloading data from ..." is held back when stderr is not a terminal and the
    # download fails, so the user's only line is the error itself.
    assert "Downloading" not in err and "Downloading" not in out
    msg = _one_line(e)
    assert "--data_path" in msg and "download failed" in msg
    assert "train-images-idx3-ubyte(.gz)" in msg and "mnist.npz" in msg and str(missing) in msg
    assert not missing.exists()  # the directory made for the download is removed again


def test_missing_mnist_no_download(tmp_path):
    with pytest.raises(DataError) as e:
        read_mnist(tmp_path, download=False)
    assert "download disabled" in _one_line(e) and "--data_path" in str(e.value)


# ------------------------------------------------------------------------------------ splits


def test_valid_split_is_last_examples(tmp_path):
    (x_tr, y_tr), _ = write_mnist_idx(tmp_path, 30, 5)
    d = load_mnist(tmp_path, num_valid=8, download=False)
    np.testing.assert_array_equal(d.y_train, y_tr[:22])
    np.testing.assert_array_equal(d.y_valid, y_tr[22:])
    # the images are the official bytes, unchanged and in the official order
    np.testing.assert_array_equal(d.x_train[..., 0], x_tr[:22])
    np.testing.assert_array_equal(d.x_valid[..., 0], x_tr[22:])


def test_normalisation_uses_train_split_only(tmp_path):
    """mean/std are the raw statistics of the TRAINING split alone (not of validation or test);
    the network's InputNormalization with them makes the training split mean 0 / std 1 and leaves
    the shifted validation and test splits where they are."""
    from enas.child.common_ops import InputNormalization

    x = np.random.default_rng(0).integers(0, 128, size=(40, 28, 28), dtype=np.uint8)
    x[30:] = 255  # validation examples far from the train distribution
    y = np.arange(40, dtype=np.uint8) % 10
    x_te = np.full((6, 28, 28), 255, np.uint8)
    d = data_common.make_splits((x[..., None], y), (x_te[..., None], y[:6]), 10, "t", stratified=False,
                                num_classes=10)
    np.testing.assert_array_equal(d.x_train[..., 0], x[:30])  # stored raw
    assert d.x_train.dtype == np.uint8
    # raw units (0-255), of x[:30] only: the whole set's mean would be far higher
    np.testing.assert_allclose(d.raw_mean, [x[:30].mean()], rtol=1e-5)
    np.testing.assert_allclose(d.raw_std, [x[:30].std()], rtol=1e-5)
    assert d.raw_mean[0] < 70 < x.mean()
    norm = InputNormalization(d.mean, d.std, d.scale)
    train = np.asarray(norm(d.x_train))
    assert train.dtype == np.float32
    assert abs(float(train.mean())) < 1e-4
    assert abs(float(train.std()) - 1.0) < 1e-3
    expected_valid = (255.0 - d.raw_mean[0]) / d.raw_std[0]
    assert expected_valid > 3  # far from 0: the held-out splits do not shift the statistics
    np.testing.assert_allclose(np.asarray(norm(d.x_valid)), expected_valid, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(norm(d.x_test)), expected_valid, rtol=1e-5)


def test_num_valid_zero(tmp_path):
    write_mnist_idx(tmp_path, 12, 3)
    d = load_mnist(tmp_path, num_valid=0, download=False)
    assert d.x_train.shape == (12, 28, 28, 1)
    assert d.x_valid.shape == (0, 28, 28, 1) and d.y_valid.shape == (0,)


@pytest.mark.parametrize("bad", [12, 13, -1, 2.5])
def test_num_valid_invalid(tmp_path, bad):
    write_mnist_idx(tmp_path, 12, 3)
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path, num_valid=bad, download=False)
    assert "num_valid" in _one_line(e) and "12" in str(e.value)


def test_max_train_before_split(tmp_path):
    (x_tr, y_tr), (_, y_te) = write_mnist_idx(tmp_path, 30, 10)
    d = load_mnist(tmp_path, num_valid=4, download=False, max_train=20, max_test=3)
    np.testing.assert_array_equal(d.y_train, y_tr[:16])
    np.testing.assert_array_equal(d.y_valid, y_tr[16:20])
    np.testing.assert_array_equal(d.y_test, y_te[:3])
    with pytest.raises(DataError):
        load_mnist(tmp_path, num_valid=4, download=False, max_train=0)


def test_load_dataset_dispatch(tmp_path):
    write_mnist_idx(tmp_path / "m", 10, 3)
    write_cifar_batches(tmp_path / "c", 2)
    assert load_dataset("mnist", tmp_path / "m", num_valid=2, download=False).name == "mnist"
    c = load_dataset("cifar10", tmp_path / "c", num_valid=2, download=False)
    assert c.name == "cifar10" and c.image_shape == (32, 32, 3)
    with pytest.raises(DataError) as e:
        load_dataset("imagenet", tmp_path)
    assert "imagenet" in _one_line(e)


# ------------------------------------------------------------------------------------ CIFAR-10


def _check_cifar(got, expected):
    (a_tr, b_tr), (a_te, b_te) = got
    (x_tr, y_tr), (x_te, y_te) = expected
    assert a_tr.shape == (15, 32, 32, 3) and a_te.shape == (3, 32, 32, 3)
    assert a_tr.dtype == np.uint8
    np.testing.assert_array_equal(a_tr, x_tr)
    np.testing.assert_array_equal(b_tr, y_tr)
    np.testing.assert_array_equal(a_te, x_te)
    np.testing.assert_array_equal(b_te, y_te)


def test_cifar_flat_dir(tmp_path):
    expected = write_cifar_batches(tmp_path, 3, seed=4)
    _check_cifar(read_cifar10(tmp_path, download=False), expected)


def test_cifar_nested_dir(tmp_path):
    expected = write_cifar_batches(tmp_path / "cifar-10-batches-py", 3, seed=5)
    _check_cifar(read_cifar10(tmp_path, download=False), expected)


def test_cifar_tar_gz(tmp_path):
    expected = write_cifar_tar_gz(tmp_path, 3, seed=6)
    _check_cifar(read_cifar10(tmp_path, download=False), expected)
    assert (tmp_path / "cifar-10-batches-py" / "test_batch").is_file()
    d = load_cifar10(tmp_path, num_valid=5, download=False)  # now from the extracted folder
    assert d.x_train.shape == (10, 32, 32, 3) and d.x_valid.shape == (5, 32, 32, 3)
    assert d.x_train.dtype == np.uint8 and d.name == "cifar10" and d.image_shape == (32, 32, 3)
    (x_tr, y_tr), _ = expected
    np.testing.assert_array_equal(d.x_train, x_tr[:10])  # raw, validation = the last 5
    np.testing.assert_array_equal(d.x_valid, x_tr[10:])
    np.testing.assert_array_equal(d.y_valid, y_tr[10:])
    assert d.mean.shape == (3,) and d.std.shape == (3,)
    np.testing.assert_allclose(d.raw_mean, x_tr[:10].mean(axis=(0, 1, 2)), rtol=1e-5)  # per channel, raw
    np.testing.assert_allclose(d.raw_std, x_tr[:10].std(axis=(0, 1, 2)), rtol=1e-5)


def test_cifar_nhwc_layout(tmp_path):
    (x_tr, _), _ = write_cifar_batches(tmp_path, 2)
    raw = pickle.loads((tmp_path / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    # the first 1024 bytes of a row are the red plane, row-major
    np.testing.assert_array_equal(raw[0, :32], x_tr[0, 0, :, 0])
    np.testing.assert_array_equal(raw[0, 1024:1056], x_tr[0, 0, :, 1])


def test_cifar_test_data_hint(tmp_path):
    write_cifar_batches(tmp_path, 2)
    (tmp_path / "test_batch").rename(tmp_path / "test_data")
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, download=False)
    msg = _one_line(e)
    assert "test_data" in msg and "test_batch" in msg


def test_cifar_incomplete(tmp_path):
    write_cifar_batches(tmp_path, 2)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, download=False)
    assert "data_batch_3" in _one_line(e)


def test_cifar_truncated_batch(tmp_path):
    write_cifar_batches(tmp_path, 2)
    path = tmp_path / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, download=False)
    assert "data_batch_2" in _one_line(e)


def test_cifar_refuses_code_in_pickle(tmp_path):
    write_cifar_batches(tmp_path, 2)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, download=False)
    assert "test_batch" in _one_line(e)


def test_cifar_unsafe_tar(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    with tarfile.open(d / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DataError) as e:
        read_cifar10(d, download=False)
    assert "unsafe" in _one_line(e) and "../escaped" in str(e.value)
    assert not (tmp_path / "escaped").exists()


def test_cifar_corrupt_tar(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(gzip.compress(b"x" * 1000)[:50])
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, download=False)
    assert "cifar-10-python.tar.gz" in _one_line(e)


def test_cifar_missing_download_fails_cleanly(tmp_path, no_network):
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, download=True)
    msg = _one_line(e)
    assert "CIFAR-10 not found" in msg and "download failed" in msg and "--data_path" in msg
    assert "test_batch" in msg and "cifar-10-python.tar.gz" in msg


# ------------------------------------------------------------------------------------ tf.data


def _arrays(n=20, h=8, w=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, h, w, c)).astype(np.float32) + 1.0, np.arange(n) % 10


def _first(ds):
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def test_eval_pipeline_keeps_order():
    x, y = _arrays(10)
    batches = list(make_dataset(x, y, 4, training=False))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]  # no drop_remainder for eval
    xs = np.concatenate([b[0].numpy() for b in batches])
    ys = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)
    assert batches[0][0].dtype.name == "float32" and batches[0][1].dtype.name == "int32"


def test_training_pipeline_deterministic_with_seed():
    x, y = _arrays(20)
    kw = dict(training=True, augment=True, cutout_size=3, seed=123)
    a, b = make_dataset(x, y, 8, **kw), make_dataset(x, y, 8, **kw)
    xa, ya = _first(a)
    xb, yb = _first(b)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert len(list(a)) == 2  # drop_remainder by default when training
    # a different seed shuffles differently
    _, yc = _first(make_dataset(x, y, 20, training=True, seed=7, drop_remainder=False))
    _, yd = _first(make_dataset(x, y, 20, training=True, seed=8, drop_remainder=False))
    assert sorted(yc.tolist()) == sorted(y.tolist()) and not np.array_equal(yc, yd)


def test_reshuffles_each_epoch():
    x, y = _arrays(20)
    ds = make_dataset(x, y, 20, training=True, seed=1)
    e1, e2 = [np.concatenate([b[1].numpy() for b in ds]) for _ in range(2)]
    assert not np.array_equal(e1, e2)


def test_augmentation_changes_images_keeps_shape():
    x, y = _arrays(16, 8, 8, 3)
    plain = make_dataset(x, y, 16, training=True, seed=3)
    aug = make_dataset(x, y, 16, training=True, augment=True, cutout_size=4, seed=3)
    xp, yp = _first(plain)
    xa, ya = _first(aug)
    np.testing.assert_array_equal(yp, ya)  # same shuffle: augmentation does not affect order
    assert xa.shape == xp.shape == (16, 8, 8, 3) and xa.dtype == np.float32
    assert not np.allclose(xa, xp)
    assert (xa == 0).any()  # zero padding / cutout visible (inputs are never exactly 0)


def test_cutout_only():
    x = np.ones((4, 8, 8, 1), np.float32)
    xa, _ = _first(make_dataset(x, np.zeros(4), 4, training=True, cutout_size=2, seed=0))
    zeros = (xa == 0).reshape(4, -1).sum(axis=1)
    assert ((zeros >= 1) & (zeros <= 4)).all()  # a 2x2 square, possibly clipped at the border


def test_raw_uint8_pipeline_casts_to_float32():
    """make_dataset takes the raw uint8 images (no normalisation) and yields float32 batches of
    exactly the same values."""
    x = np.random.default_rng(2).integers(0, 256, size=(10, 6, 5, 1), dtype=np.uint8)
    y = np.arange(10) % 3
    xs = np.concatenate([b[0].numpy() for b in make_dataset(x, y, 4, training=False)])
    assert xs.dtype == np.float32 and xs.shape == (10, 6, 5, 1)
    np.testing.assert_array_equal(xs, x.astype(np.float32))


def test_padding_and_cutout_fill_with_the_given_mean():
    """Padding and cutout take ``fill`` (the training mean, raw): the value that reads as 0 after
    the network's input normalisation, as ENAS's zeros in normalised space."""
    x = np.full((8, 8, 8, 2), 200, np.uint8)
    fill = [50.0, 90.0]
    xa, _ = _first(make_dataset(x, np.zeros(8), 8, training=True, cutout_size=3, seed=0, fill=fill))
    for c, value in enumerate(fill):
        channel = xa[..., c]
        assert set(np.unique(channel).tolist()) == {200.0, value}  # cutout squares hold the fill
        cut = (channel == value).reshape(8, -1).sum(axis=1)
        assert ((cut >= 1) & (cut <= 9)).all()
    np.testing.assert_array_equal(xa[..., 0] == 50.0, xa[..., 1] == 90.0)  # one square for all channels
    xp, _ = _first(make_dataset(x, np.zeros(8), 8, training=True, augment=True, seed=1, fill=fill))
    assert set(np.unique(xp[..., 0]).tolist()) <= {200.0, 50.0} and (xp[..., 0] == 50.0).any()  # padded rim
    assert not (xp == 0).any()


# ------------------------------------------------------------------------------------ official


@pytest.mark.skipif(not OFFICIAL_MNIST.is_dir(), reason="official MNIST not available")
def test_official_mnist():
    d = load_mnist(OFFICIAL_MNIST, num_valid=500, download=False, max_train=2000, max_test=500)
    assert d.x_train.shape == (1500, 28, 28, 1) and d.x_valid.shape == (500, 28, 28, 1)
    assert d.x_test.shape == (500, 28, 28, 1)
    assert d.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert d.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert d.x_train.dtype == np.uint8 and d.x_train.min() == 0 and d.x_train.max() == 255
    # raw MNIST statistics (the well-known 0.1307 / 0.3081 of the full set, in 0-255 units)
    np.testing.assert_allclose(d.raw_mean, [d.x_train.mean()], rtol=1e-5)
    np.testing.assert_allclose(d.raw_std, [d.x_train.std()], rtol=1e-5)
    assert 25 < d.raw_mean[0] < 40 and 70 < d.raw_std[0] < 85
