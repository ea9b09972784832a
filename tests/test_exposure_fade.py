"""The exposure fade: well-exposed photos are left as they are, dim ones get the whole enhancement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from enlightengan.cli import main
from enlightengan.inference import Enhancer
from enlightengan.models.checkpoint import load_generator, save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig, exposure_fade_factor

from .conftest import make_dark_rgb


def _grey(level: float) -> torch.Tensor:
    return torch.full((1, 3, 8, 8), level * 2 - 1)


def test_factor_by_hand() -> None:
    fade = (0.35, 0.45)
    assert exposure_fade_factor(_grey(0.2), fade).item() == pytest.approx(1.0)
    assert exposure_fade_factor(_grey(0.35), fade).item() == pytest.approx(1.0)
    assert exposure_fade_factor(_grey(0.40), fade).item() == pytest.approx(0.5, abs=1e-5)  # smoothstep(0.5)
    # t = 0.25 -> 3 t^2 - 2 t^3 = 0.15625
    assert exposure_fade_factor(_grey(0.425), fade).item() == pytest.approx(0.15625, abs=1e-5)
    assert exposure_fade_factor(_grey(0.6), fade).item() == pytest.approx(0.0)
    batch = torch.cat([_grey(0.1), _grey(0.9)])
    assert exposure_fade_factor(batch, fade).flatten().tolist() == pytest.approx([1.0, 0.0])  # per image


def test_config_checks_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exposure_fade"):
        GeneratorConfig(exposure_fade=(0.5, 0.4))
    torch.manual_seed(0)
    model = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval()
    loaded = load_generator(save_generator(model, tmp_path / "g.safetensors"))
    assert loaded.config.exposure_fade == (0.35, 0.45)


def test_enhancer_leaves_bright_photos_and_enhances_dark_ones(tmp_path: Path) -> None:
    torch.manual_seed(3)
    plain = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    faded = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval()
    faded.load_state_dict(plain.state_dict())
    dark = make_dark_rgb(40, 48)  # mean well below 0.35
    bright = np.clip(dark.astype(np.int32) * 12 + 60, 0, 255).astype(np.uint8)  # mean above 0.45
    assert bright.mean() / 255 > 0.45
    with_fade, without = Enhancer(model=faded, device="cpu"), Enhancer(model=plain, device="cpu")
    np.testing.assert_array_equal(with_fade.enhance(dark), without.enhance(dark))
    np.testing.assert_array_equal(with_fade.enhance(bright), bright)  # untouched
    assert not np.array_equal(without.enhance(bright), bright)


def test_export_records_and_removes_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4)).eval(), tmp_path / "g.safetensors"
    )
    out = tmp_path / "faded.safetensors"
    assert (
        main(["export", "--weights", str(source), "--safetensors", str(out), "--exposure-fade", "0.3,0.5"])
        == 0
    )
    assert load_generator(out).config.exposure_fade == (0.3, 0.5)
    back = tmp_path / "plain.safetensors"
    assert main(["export", "--weights", str(out), "--safetensors", str(back), "--exposure-fade", "none"]) == 0
    assert load_generator(back).config.exposure_fade is None
    with pytest.raises(SystemExit):
        main(["export", "--weights", str(source), "--safetensors", str(back), "--exposure-fade", "0.6,0.5"])


def _grey_photo(level: int) -> np.ndarray:
    """A 32 x 40 photo of mean brightness ``level / 255`` with some texture (a +-6 checkerboard)."""
    checker = (np.indices((32, 40)).sum(axis=0) % 2) * 12 - 6
    return np.repeat((level + checker)[..., None], 3, axis=2).astype(np.uint8)


def test_enhancer_overrides_the_weights_fade() -> None:
    torch.manual_seed(3)
    faded = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval()
    low_key = _grey_photo(77)  # mean 0.30: inside (0.25, 0.35), below the weights' 0.35
    assert 0.25 < low_key.mean() / 255 < 0.35
    as_recorded = Enhancer(model=faded, device="cpu")
    assert as_recorded.exposure_fade == (0.35, 0.45)
    assert not np.array_equal(as_recorded.enhance(low_key), low_key)  # enhanced fully by the weights' fade
    stricter = Enhancer(model=faded, device="cpu", exposure_fade=(0.25, 0.30))
    np.testing.assert_array_equal(stricter.enhance(low_key), low_key)  # above 0.30: left as it is
    unfaded = Enhancer(model=faded, device="cpu", exposure_fade=None)
    bright = _grey_photo(180)
    assert unfaded.exposure_fade is None and not np.array_equal(unfaded.enhance(bright), bright)
    assert faded.config.exposure_fade == (0.35, 0.45)  # the model itself is not changed
    # half way: smoothstep(0.5) = 0.5 of the residual, on the network's [-1, 1] scale
    half = Enhancer(model=faded, device="cpu", exposure_fade=(0.2, 0.4))
    x = torch.from_numpy(low_key).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
    factor = exposure_fade_factor(x, (0.2, 0.4)).item()
    full = Enhancer(model=faded, device="cpu", exposure_fade=None).enhance_tensor(x)
    expected = (x + factor * (full - x)).clamp(-1, 1)
    torch.testing.assert_close(half.enhance_tensor(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [(0.5, 0.4), "none", (0.1, 0.2, 0.3), 5])
def test_enhancer_refuses_bad_fades(bad: object) -> None:
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    with pytest.raises(ValueError, match="exposure_fade"):
        Enhancer(model=model, device="cpu", exposure_fade=bad)  # type: ignore[arg-type]


def test_enhance_command_takes_a_fade(tmp_path: Path) -> None:
    from PIL import Image

    torch.manual_seed(3)
    weights = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval(),
        tmp_path / "g.safetensors",
    )
    Image.fromarray(_grey_photo(77)).save(tmp_path / "lowkey.png")
    for option, out in ((["--exposure-fade", "0.25,0.30"], "strict"), ([], "recorded")):
        argv = ["enhance", str(tmp_path / "lowkey.png"), "-o", str(tmp_path / out), "--weights", str(weights)]
        assert main([*argv, "--quiet", *option]) == 0
    strict = np.asarray(Image.open(tmp_path / "strict" / "lowkey.png"))
    recorded = np.asarray(Image.open(tmp_path / "recorded" / "lowkey.png"))
    np.testing.assert_array_equal(strict, _grey_photo(77))
    assert not np.array_equal(recorded, _grey_photo(77))
    with pytest.raises(SystemExit):
        main(["enhance", str(tmp_path / "lowkey.png"), "-o", str(tmp_path / "x"), "--exposure-fade", "0.4"])


def test_evaluate_takes_a_fade_and_refuses_it_without_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from PIL import Image

    torch.manual_seed(3)
    weights = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval(),
        tmp_path / "g.safetensors",
    )
    (tmp_path / "low").mkdir()
    textured = np.clip(make_dark_rgb(96, 112).astype(int) * 3 + 20, 0, 255).astype(np.uint8)  # NIQE: 96 px
    assert 0.30 < (textured @ np.array([0.299, 0.587, 0.114])).mean() / 255 < 0.35
    Image.fromarray(textured).save(tmp_path / "low" / "a.png")
    low = ["--low", str(tmp_path / "low"), "--weights", str(weights)]
    assert main(["evaluate", *low, "--exposure-fade", "0.25,0.30", "--json", str(tmp_path / "s.json")]) == 0
    assert main(["evaluate", *low, "--json", str(tmp_path / "r.json")]) == 0
    strict, recorded = (json.loads((tmp_path / n).read_text())["mean"] for n in ("s.json", "r.json"))
    assert strict["de_input"] == 0.0 < recorded["de_input"]  # left as it is only with the stricter fade
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(tmp_path / "low"), "--exposure-fade", "0.25,0.35"]) == 2
    assert "--exposure-fade applies to a model" in capsys.readouterr().err


def test_a_call_overrides_the_enhancers_fade() -> None:
    torch.manual_seed(3)
    faded = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval()
    low_key, bright = _grey_photo(77), _grey_photo(180)  # mean 0.30 and 0.71
    enhancer = Enhancer(model=faded, device="cpu")
    recorded = enhancer.enhance(low_key)
    assert not np.array_equal(recorded, low_key)  # below the weights' 0.35: enhanced fully
    np.testing.assert_array_equal(enhancer.enhance(low_key, exposure_fade=(0.25, 0.30)), low_key)
    np.testing.assert_array_equal(enhancer.enhance(low_key, exposure_fade="weights"), recorded)
    assert not np.array_equal(enhancer.enhance(bright, exposure_fade=None), bright)
    np.testing.assert_array_equal(enhancer.enhance(bright), bright)  # the enhancer's own fade again
    assert enhancer.exposure_fade == (0.35, 0.45)  # a call does not change the enhancer
    stricter = Enhancer(model=faded, device="cpu", exposure_fade=(0.25, 0.30))
    np.testing.assert_array_equal(stricter.enhance(low_key, exposure_fade="weights"), recorded)
    x = torch.from_numpy(low_key).permute(2, 0, 1).float().div(127.5).sub(1.0)  # 3 x H x W: one image
    torch.testing.assert_close(
        enhancer.enhance_tensor(x, exposure_fade=(0.2, 0.4)),
        Enhancer(model=faded, device="cpu", exposure_fade=(0.2, 0.4)).enhance_tensor(x),
        atol=0,
        rtol=0,
    )
    for bad in ((0.5, 0.4), "none", (0.1,)):
        with pytest.raises(ValueError, match="exposure_fade"):
            enhancer.enhance(low_key, exposure_fade=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.25,0.35", (0.25, 0.35)), (" None ", None), ("0,1", (0.0, 1.0)), ("0.3, 0.5", (0.3, 0.5))],
)
def test_the_written_form(text: str, expected: tuple[float, float] | None) -> None:
    from enlightengan.formats import parse_exposure_fade

    assert parse_exposure_fade(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("0.4", "LOW,HIGH"), ("a,b", "LOW,HIGH"), ("0.5,0.4", "0 <= LOW < HIGH <= 1"), ("0.2,1.5", "<= 1")],
)
def test_bad_written_forms(text: str, message: str) -> None:
    from enlightengan.formats import parse_exposure_fade

    with pytest.raises(ValueError, match=message):
        parse_exposure_fade(text)
