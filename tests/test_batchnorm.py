"""Precise BatchNorm statistics: running statistics become the average of per-image statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from enlightengan.cli import main
from enlightengan.models.batchnorm import recalibrate_batchnorm
from enlightengan.models.checkpoint import load_generator, read_generator_file, save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig

from .conftest import make_dark_rgb


def test_statistics_are_the_average_over_images() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    model = nn.Sequential(conv, nn.BatchNorm2d(4, momentum=0.3)).eval()
    images = [torch.randn(1, 3, 9 + i, 11) * (i + 1) for i in range(3)]
    with torch.no_grad():
        features = [conv(x) for x in images]
    # by hand: per-image channel mean and unbiased variance, averaged over the images
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features]).mean(0)

    assert recalibrate_batchnorm(model, images) == 3
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm2d)
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    assert bn.momentum == 0.3 and not model.training  # restored
    assert torch.equal(conv.weight, model[0].weight)


def test_no_images_keeps_the_old_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    with pytest.raises(ValueError, match="at least one image"):
        recalibrate_batchnorm(model, [])
    assert torch.equal(model[1].running_mean, torch.full((2,), 0.5))
    assert model[1].momentum == 0.1


def test_eval_output_matches_batch_statistics_for_one_image() -> None:
    """Recalibrated on a single image, eval mode reproduces train mode on that image (up to var bias)."""
    torch.manual_seed(1)
    generator = EnlightenGenerator(GeneratorConfig(base_width=4))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    recalibrate_batchnorm(generator, [x])
    generator.eval()
    with torch.no_grad():
        eval_out = generator(x).output
        train_out = generator.train()(x).output
    # eval uses the unbiased variance, train the biased one: close but not bit-equal
    assert (eval_out - train_out).abs().max() < 0.05


def test_export_recalibrate_bn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(2)
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    weights = save_generator(model, tmp_path / "g.safetensors")
    photos = tmp_path / "low"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(make_dark_rgb(40, 48, seed=i)).save(photos / f"{i}.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "recal.safetensors"
    argv = ["export", "--weights", str(weights), "--safetensors", str(out), "--recalibrate-bn", str(photos)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "recalibrated on 3 images" in err and "skipped" in err and "broken.png" in err
    assert read_generator_file(out)[2]["batchnorm"] == "recalibrated on 3 images of low"

    expected = load_generator(weights)
    recalibrate_batchnorm(
        expected,
        [
            torch.from_numpy(make_dark_rgb(40, 48, seed=i)).permute(2, 0, 1)[None].float() / 127.5 - 1
            for i in range(3)
        ],
    )
    got = load_generator(out).state_dict()
    for key, value in expected.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if "running" in key:
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6)
            assert not torch.equal(value, model.state_dict()[key]), key
        else:
            assert torch.equal(got[key], value), key  # weights untouched

    assert main([*argv[:-1], str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse rejects it while parsing
        main([*argv, "--recalibrate-max", "0"])
    assert info.value.code == 2


def _per_image_generator(width: int = 4) -> EnlightenGenerator:
    torch.manual_seed(3)
    model = EnlightenGenerator(GeneratorConfig(base_width=width, batchnorm="per-image"))
    with torch.no_grad():  # running statistics far from any image's: per-image must not use them
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.fill_(3.0)
    return model.eval()


def test_per_image_enhancer_uses_each_images_own_statistics() -> None:
    from enlightengan.inference import Enhancer

    model = _per_image_generator()
    images = [
        torch.from_numpy(make_dark_rgb(48, 64, seed=s)).permute(2, 0, 1)[None].float() / 127.5 - 1
        for s in (0, 5)
    ]
    got = Enhancer(model=model, device="cpu", backend="torch").enhance_tensor(torch.cat(images))
    for i, x in enumerate(images):
        with torch.no_grad():  # per-image statistics: training-mode BatchNorm, batch of one
            expected = model.train()(x).output.clamp(-1, 1)
        model.eval()
        torch.testing.assert_close(got[i : i + 1], expected, atol=1e-5, rtol=0)
    running = Enhancer(model=EnlightenGenerator(GeneratorConfig(base_width=4)), device="cpu")
    running.model.load_state_dict(model.state_dict())
    assert (running.enhance_tensor(images[0]) - got[0:1]).abs().max() > 0.1  # the mode matters


def test_per_image_statistics_come_from_the_whole_image_not_each_tile() -> None:
    """Tiles share the statistics measured on the whole image, so tiling keeps its exactness
    (test_tiling.py) for per-image models too."""
    from enlightengan.inference import Enhancer
    from enlightengan.models.batchnorm import per_image_model

    model = _per_image_generator()
    x = torch.from_numpy(make_dark_rgb(260, 300)).permute(2, 0, 1)[None].float() / 127.5 - 1
    measured = per_image_model(model, x)
    fixed = EnlightenGenerator(GeneratorConfig(base_width=4))
    fixed.load_state_dict(measured.state_dict())
    tiled = Enhancer(model=model, device="cpu", backend="torch", tile=272).enhance_tensor(x)
    torch.testing.assert_close(tiled, Enhancer(model=fixed.eval(), device="cpu", tile=272).enhance_tensor(x))
    whole = Enhancer(model=model, device="cpu", backend="torch").enhance_tensor(x)
    torch.testing.assert_close(whole, Enhancer(model=fixed, device="cpu").enhance_tensor(x))


def test_per_image_statistics_of_large_images_come_from_a_shrunk_copy() -> None:
    from enlightengan.models.batchnorm import per_image_model

    model = _per_image_generator()
    x = torch.rand(1, 3, 200, 300) * 2 - 1
    measured = per_image_model(model, x, max_pixels=6_000)
    small = torch.nn.functional.interpolate(
        x, size=(63, 95), mode="bilinear", align_corners=False, antialias=True
    )
    expected = per_image_model(model, small)
    for (key, a), b in zip(measured.state_dict().items(), expected.state_dict().values(), strict=True):
        if "running" in key:
            torch.testing.assert_close(a, b), key
    assert model.state_dict()["bn1_1.running_mean"].eq(3.0).all()  # the original is untouched


def test_per_image_is_recorded_in_the_file(tmp_path: Path) -> None:
    plain = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4)).eval(), tmp_path / "g.safetensors"
    )
    out = tmp_path / "pi.safetensors"
    assert (
        main(["export", "--weights", str(plain), "--safetensors", str(out), "--batchnorm", "per-image"]) == 0
    )
    assert load_generator(out).config == GeneratorConfig(base_width=4, batchnorm="per-image")
    with pytest.raises(ValueError, match="batchnorm must be"):
        GeneratorConfig(batchnorm="instance")


def test_thumbnails_get_statistics_from_an_enlarged_copy() -> None:
    """A photo of at most 16 x 16 pads to one value per channel at the deepest level (no variance:
    PyTorch refuses to normalise it); its statistics come from a 32 x 32 enlargement instead."""
    from enlightengan.inference import Enhancer
    from enlightengan.models.batchnorm import per_image_model, statistics_image

    model = _per_image_generator()
    x = torch.from_numpy(make_dark_rgb(12, 10)).permute(2, 0, 1)[None].float() / 127.5 - 1
    enlarged = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(statistics_image(x), enlarged)
    assert statistics_image(x[..., :10, :]).shape[-2:] == (32, 32)
    wide = torch.zeros(1, 3, 12, 17)  # one side over 16: its padded copy has two deepest pixels
    assert statistics_image(wide) is wide
    got = Enhancer(model=model, device="cpu", backend="torch").enhance_tensor(x)
    with torch.no_grad():
        expected = per_image_model(model, enlarged)(x).output.clamp(-1, 1)
    torch.testing.assert_close(got, expected)


def _photos(*seeds: int, height: int = 48, width: int = 64) -> torch.Tensor:
    return torch.cat(
        [
            torch.from_numpy(make_dark_rgb(height, width, seed=s)).permute(2, 0, 1)[None].float() / 127.5 - 1
            for s in seeds
        ]
    )


def test_measuring_backend_is_training_mode_batchnorm_per_image() -> None:
    from enlightengan.inference.placement import Placement
    from enlightengan.inference.torch_backend import TorchBackend
    from enlightengan.models.ops import attention_map

    model = _per_image_generator()
    x = _photos(1, 2)  # 48 x 64: already on the 16-pixel grid
    out, latent = TorchBackend(model, statistics="measured").run(x, attention_map(x))
    for i in range(2):
        with torch.no_grad():
            expected, expected_latent = model.train()(x[i : i + 1])
        model.eval()
        torch.testing.assert_close(out[i : i + 1], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(latent[i : i + 1], expected_latent, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="whole images only"):
        TorchBackend(model, statistics="measured").run(x, attention_map(x), Placement(0, 0, 96, 64))
    with pytest.raises(ValueError, match="cannot be folded"):
        TorchBackend(model, statistics="measured", fold_batchnorm=True)
    with pytest.raises(ValueError, match="statistics must be"):
        TorchBackend(model, statistics="instance")  # type: ignore[arg-type]


def test_per_image_enhancer_measures_in_the_pass_when_the_image_runs_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One pass for photos that run in one piece; the separate statistics pass only for tiled ones."""
    import enlightengan.inference.torch_backend as torch_backend
    from enlightengan.inference import Enhancer

    model = _per_image_generator()
    calls: list[tuple[int, ...]] = []
    original = torch_backend.per_image_model

    def counting(generator: EnlightenGenerator, image: torch.Tensor) -> EnlightenGenerator:
        calls.append(tuple(image.shape))
        return original(generator, image)

    monkeypatch.setattr(torch_backend, "per_image_model", counting)
    small = _photos(3)
    one_pass = Enhancer(model=model, device="cpu", backend="torch").enhance_tensor(small)
    assert calls == []  # measured during the pass itself
    with torch.no_grad():  # the same as measuring first, then normalising with the measured statistics
        two_passes = original(model, small)(small).output.clamp(-1, 1)
    torch.testing.assert_close(one_pass, two_passes, atol=1e-5, rtol=0)
    wide = _photos(4, height=60, width=300)
    Enhancer(model=model, device="cpu", backend="torch", tile=272).enhance_tensor(wide)
    assert calls == [(1, 3, 60, 300)]  # tiles: statistics of the whole image first


def test_fast_mode_normalises_the_shrunk_image_with_its_own_statistics() -> None:
    from enlightengan.inference import Enhancer
    from enlightengan.inference.fast import FastConfig, fast_latent
    from enlightengan.inference.torch_backend import TorchBackend
    from enlightengan.models.batchnorm import per_image_model
    from enlightengan.models.ops import shrink

    model = _per_image_generator()
    x = _photos(5, height=96, width=128)
    config = FastConfig(scale=2.0)
    got = Enhancer(model=model, device="cpu", backend="torch", fast=config).enhance_tensor(x)
    with torch.no_grad():
        backend = TorchBackend(per_image_model(model, shrink(x, 2.0)))
        expected = (x + fast_latent(backend, x, config)).clamp(-1, 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_fixed_statistics_layer_normalises_with_stored_statistics_in_training_too() -> None:
    from enlightengan.models.batchnorm import FixedStatisticsBatchNorm2d, fix_batchnorm_statistics

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    with torch.no_grad():
        for bn in (net[1], net[2][0]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 9, 9)
    expected = net.eval()(x)
    fix_batchnorm_statistics(net)
    assert isinstance(net[1], FixedStatisticsBatchNorm2d) and isinstance(
        net[2][0], FixedStatisticsBatchNorm2d
    )
    assert list(net.state_dict()) == list(before)  # the same names: files stay interchangeable
    net.train()
    torch.testing.assert_close(net(x), expected)  # training mode computes the eval-mode function
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key  # and never updates the statistics
    out = net(x)
    out.sum().backward()
    assert net[1].weight.grad is not None and net[1].bias.grad is not None  # scale and shift still learn
