"""VGG-16 feature network: both weight layouts, preprocessing by hand, truncation, strict loading."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from enlightengan.models import vgg
from enlightengan.models.vgg import VGG16Features, load_vgg16_features, random_vgg16_features
from enlightengan.weights import VGG16_TORCHVISION, WeightsSpec, WeightsUnavailableError, sha256_file

# (name, in, out) of VGG-16's 13 convolutions and their index in torchvision's ``features``
CONVS = [
    ("conv1_1", 3, 64, 0), ("conv1_2", 64, 64, 2),
    ("conv2_1", 64, 128, 5), ("conv2_2", 128, 128, 7),
    ("conv3_1", 128, 256, 10), ("conv3_2", 256, 256, 12), ("conv3_3", 256, 256, 14),
    ("conv4_1", 256, 512, 17), ("conv4_2", 512, 512, 19), ("conv4_3", 512, 512, 21),
    ("conv5_1", 512, 512, 24), ("conv5_2", 512, 512, 26), ("conv5_3", 512, 512, 28),
]  # fmt: skip
USED = [c for c in CONVS if c[0] <= "conv5_1"]
Saved = dict[str, tuple[dict[str, torch.Tensor], Path]]


def _key(fmt: str, name: str, index: int) -> str:
    return f"features.{index}" if fmt == "torchvision" else name


def random_state(fmt: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full VGG-16 state dict in ``fmt``'s layout (the classifier, unused here, kept tiny)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, cin, cout, index in CONVS:
        state[f"{_key(fmt, name, index)}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.01
        state[f"{_key(fmt, name, index)}.bias"] = torch.randn(cout, generator=g) * 0.01
    if fmt == "torchvision":
        for index in (0, 3, 6):
            state[f"classifier.{index}.weight"] = torch.zeros(2, 2)
            state[f"classifier.{index}.bias"] = torch.zeros(2)
    return state


def picker_state(fmt: str, first_bias: float = 0.0, last_bias: float = 0.0) -> dict[str, torch.Tensor]:
    """Every conv copies its input channels 0..2 to its output channels 0..2 (centre tap 1), rest 0.

    So the relu5_1 features' channels 0..2 are the preprocessed input after three 2x2 max-pools
    (and the ReLUs), and all other channels are 0.
    """
    state = {}
    for name, cin, cout, index in CONVS:
        weight = torch.zeros(cout, cin, 3, 3)
        for k in range(3):
            weight[k, k, 1, 1] = 1.0
        bias = torch.zeros(cout)
        if name == "conv1_1":
            bias[:3] = first_bias
        if name == "conv5_1":
            bias[:3] = last_bias
        state[f"{_key(fmt, name, index)}.weight"] = weight
        state[f"{_key(fmt, name, index)}.bias"] = bias
    return state


def save(state: dict[str, torch.Tensor], path: Path, legacy: bool = False) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


# An image of four 8 x 8 blocks of constant colour (RGB in [0, 1]); after three 2 x 2 max-pools each
# block is one feature position, so features can be read off by hand.
BLOCKS01 = {
    (0, 0): (0.2, 0.4, 0.6),
    (0, 1): (1.0, 0.0, 0.5),
    (1, 0): (0.1, 0.9, 0.3),
    (1, 1): (0.0, 0.0, 0.0),
}


@pytest.fixture(scope="module")
def random_net() -> VGG16Features:
    with pytest.warns(UserWarning, match="RANDOMLY"):
        return random_vgg16_features(seed=0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A random full state dict per layout, and the file it was saved to."""
    folder = tmp_path_factory.mktemp("vgg")
    out = {}
    for fmt in ("torchvision", "caffe"):
        state = random_state(fmt, seed=1)
        out[fmt] = (state, save(state, folder / f"{fmt}.pth"))
    return out


def block_image() -> torch.Tensor:
    image = torch.zeros(1, 3, 16, 16)
    for (i, j), rgb in BLOCKS01.items():
        image[0, :, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = torch.tensor(rgb).view(3, 1, 1)
    return image * 2 - 1  # RGB in [-1, 1], as the network takes it


def test_caffe_format_feeds_bgr_0_255_without_mean(tmp_path: Path) -> None:
    net = load_vgg16_features(save(picker_state("caffe"), tmp_path / "vgg16.weight"))
    assert net.input_format == "caffe"
    features = net(block_image())
    assert features.shape == (1, 512, 2, 2)
    # channel 0 = B * 255, channel 1 = G * 255, channel 2 = R * 255, per block
    expected = torch.tensor(
        [
            [[153.0, 127.5], [76.5, 0.0]],  # B: 0.6, 0.5, 0.3, 0.0
            [[102.0, 0.0], [229.5, 0.0]],  # G: 0.4, 0.0, 0.9, 0.0
            [[51.0, 255.0], [25.5, 0.0]],  # R: 0.2, 1.0, 0.1, 0.0
        ]
    )
    torch.testing.assert_close(features[0, :3], expected, rtol=0, atol=1e-3)
    assert features[0, 3:].abs().max() == 0


def test_torchvision_format_feeds_rgb_normalised_with_imagenet_statistics(tmp_path: Path) -> None:
    # conv1_1's bias +3 keeps every normalised value positive through the ReLUs
    net = load_vgg16_features(save(picker_state("torchvision", first_bias=3.0), tmp_path / "vgg.pth"))
    assert net.input_format == "torchvision"
    features = net(block_image())
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = torch.zeros(3, 2, 2)
    for (i, j), rgb in BLOCKS01.items():
        for c in range(3):
            expected[c, i, j] = (rgb[c] - mean[c]) / std[c] + 3.0
    # e.g. block (0, 1), R: (1.0 - 0.485) / 0.229 + 3 = 5.2489...
    assert expected[0, 0, 1].item() == pytest.approx(5.24891, abs=1e-4)
    torch.testing.assert_close(features[0, :3], expected, rtol=0, atol=1e-4)


def test_features_end_with_relu5_1(tmp_path: Path) -> None:
    """conv5_1's bias -100 with the ReLU after it: B*255 = [153, 127.5, 76.5, 0] becomes [53, 27.5, 0, 0]."""
    net = load_vgg16_features(save(picker_state("caffe", last_bias=-100.0), tmp_path / "vgg16.weight"))
    torch.testing.assert_close(net(block_image())[0, 0], torch.tensor([[53.0, 27.5], [0.0, 0.0]]))
    assert not hasattr(net, "conv5_2") and not hasattr(net, "conv5_3")


@pytest.mark.parametrize(("size", "expected"), [((32, 48), (4, 6)), ((20, 20), (2, 2)), ((8, 8), (1, 1))])
def test_no_fourth_pool_features_are_an_eighth(
    random_net: VGG16Features, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    # with the 4th pool 32 x 48 would give 2 x 3
    assert random_net(torch.zeros(1, 3, *size)).shape == (1, 512, *expected)


def test_weights_are_mapped_from_both_layouts(saved: Saved) -> None:
    for fmt, (state, path) in saved.items():
        net = load_vgg16_features(path)
        assert net.input_format == fmt
        for name, _, _, index in USED:
            torch.testing.assert_close(getattr(net, name).weight, state[f"{_key(fmt, name, index)}.weight"])
            torch.testing.assert_close(getattr(net, name).bias, state[f"{_key(fmt, name, index)}.bias"])


def test_legacy_serialisation_and_module_prefix(tmp_path: Path) -> None:
    """The original vgg16.weight was written by torch 0.3 (pre-zip format); DataParallel adds 'module.'."""
    state = {f"module.{k}": v for k, v in random_state("caffe", seed=2).items()}
    net = load_vgg16_features(save(state, tmp_path / "vgg16.weight", legacy=True))
    assert net.input_format == "caffe"
    torch.testing.assert_close(net.conv4_3.weight, state["module.conv4_3.weight"])


def test_network_is_frozen_and_stays_in_eval_mode(random_net: VGG16Features) -> None:
    net = random_net
    assert all(not p.requires_grad for p in net.parameters())
    assert not net.training
    torch.nn.Sequential(net).train()
    assert not net.training
    image = torch.zeros(1, 3, 16, 16, requires_grad=True)
    net(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert set(net.state_dict()) == {f"{name}.{p}" for name, *_ in USED for p in ("weight", "bias")}


def test_random_features_warn_loudly_and_are_seeded(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        a = random_vgg16_features(seed=5)
    assert any("RANDOMLY INITIALISED" in r.getMessage() for r in caplog.records)
    with pytest.warns(UserWarning):
        b = random_vgg16_features(seed=5)
        c = random_vgg16_features(seed=6)
    torch.testing.assert_close(a.conv3_1.weight, b.conv3_1.weight)
    assert not torch.equal(a.conv3_1.weight, c.conv3_1.weight)
    # Kaiming normal: std sqrt(2 / fan_in), fan_in = 256 * 9 for conv4_1
    assert a.conv4_1.weight.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.02)


def test_random_is_only_given_when_allowed() -> None:
    with pytest.raises(ValueError, match="asked for explicitly"):
        load_vgg16_features("random")
    with pytest.warns(UserWarning, match="RANDOMLY"):
        net = load_vgg16_features("random", allow_random=True, seed=3)
    assert isinstance(net, VGG16Features)


def test_bad_files_give_clear_errors(tmp_path: Path, saved: Saved) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_vgg16_features(tmp_path / "missing.pth")

    state = dict(saved["caffe"][0])
    del state["conv4_2.bias"]
    with pytest.raises(ValueError, match=r"lacks conv4_2\.bias"):
        load_vgg16_features(save(state, tmp_path / "incomplete.pth"))

    state = dict(saved["torchvision"][0])
    state["features.24.weight"] = torch.zeros(512, 256, 3, 3)
    with pytest.raises(ValueError, match=r"features\.24\.weight has shape \(512, 256, 3, 3\)"):
        load_vgg16_features(save(state, tmp_path / "shape.pth"))

    state = dict(saved["caffe"][0])
    state["fc6.weight"] = torch.zeros(2)
    with pytest.raises(ValueError, match=r"unexpected keys.*fc6"):
        load_vgg16_features(save(state, tmp_path / "extra.pth"))

    with pytest.raises(ValueError, match="not a VGG-16 state dict"):
        load_vgg16_features(save({"conv1_1.weight_x": torch.zeros(1)}, tmp_path / "other.pth"))

    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="holds a Tensor"):
        load_vgg16_features(tmp_path / "tensor.pth")

    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_vgg16_features(tmp_path / "text.pth")


def test_forward_rejects_bad_shapes() -> None:
    net = VGG16Features("caffe")
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        net(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="at least 8 x 8"):
        net(torch.zeros(1, 3, 4, 16))
    with pytest.raises(ValueError, match="input_format"):
        VGG16Features("bgr")  # type: ignore[arg-type]


def test_no_path_uses_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saved: Saved) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsUnavailableError) as info:
        load_vgg16_features(None, download=False)
    message = str(info.value)
    assert VGG16_TORCHVISION.url is not None and VGG16_TORCHVISION.url in message
    assert os.fspath(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in message

    # a cached file is used without any download (a spec whose hash matches the test's file)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-test.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(saved["torchvision"][1].read_bytes())
    spec = WeightsSpec(
        "vgg-test", cached.name, sha256_file(cached), "", "", "", url="http://127.0.0.1:9/none"
    )
    monkeypatch.setattr(vgg, "VGG16_TORCHVISION", spec)
    net = load_vgg16_features(None, download=False)
    assert net.input_format == "torchvision"
