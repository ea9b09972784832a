"""Precise BatchNorm statistics: running statistics become the average of per-image statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from enlightengan.cli import main
from enlightengan.models.checkpoint import load_generator, read_generator_file, save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.training.batchnorm import recalibrate_batchnorm

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
    assert main([*argv, "--recalibrate-max", "0"]) == 2
