"""``enlightengan evaluate`` end to end on images the tests make, plus the classical baselines."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enlightengan.cli import main
from enlightengan.commands.evaluate import MONTAGE_HEIGHT
from enlightengan.metrics import brightness, niqe, psnr, ssim
from enlightengan.metrics.baselines import choose_gamma, clahe_baseline, gamma_baseline

from .conftest import data_file, make_dark_rgb

SIZE = 200  # NIQE needs at least one 96x96 block


def _bright(seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    return np.clip(make_dark_rgb(*size, seed=seed).astype(np.int32) * 3 + 20, 0, 255).astype(np.uint8)


def _write(folder: Path, name: str, image: np.ndarray) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / name)
    return image


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# --- scoring folders ------------------------------------------------------------------------------


def test_pred_with_ref_writes_scores_table_and_montage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = {n: _write(tmp_path / "pred", f"{n}.png", _bright(i)) for i, n in enumerate(["a", "b"])}
    refs = {n: _write(tmp_path / "ref", f"{n}.png", _bright(i + 10)) for i, n in enumerate(["a", "b"])}
    for i, n in enumerate(["a", "b"]):
        _write(tmp_path / "low", f"{n}.jpg", make_dark_rgb(SIZE, SIZE, seed=i))
    out, montage = tmp_path / "scores.json", tmp_path / "look.png"
    argv = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    argv += ["--low", str(tmp_path / "low"), "--json", str(out), "--montage", str(montage)]
    assert main(argv) == 0

    report = _read_json(out)
    assert [entry["name"] for entry in report["images"]] == ["a.png", "b.png"]
    for entry in report["images"]:
        stem = entry["name"][0]
        pred, ref = preds[stem], refs[stem]
        assert entry["niqe"] == pytest.approx(niqe(pred), rel=1e-12)
        assert entry["psnr"] == pytest.approx(psnr(pred, ref), rel=1e-12)
        assert entry["ssim"] == pytest.approx(ssim(pred, ref), rel=1e-12)
        assert entry["brightness"] == pytest.approx(brightness(pred), rel=1e-12)
    for key in ("niqe", "psnr", "ssim", "brightness"):
        assert report["mean"][key] == pytest.approx(np.mean([e[key] for e in report["images"]]))
    assert report["mean"]["count"] == 2 and report["errors"] == []

    table = capsys.readouterr().out
    assert "NIQE" in table and "PSNR" in table and "a.png" in table and "mean" in table
    # Three columns (input | output | reference) of 192-px thumbnails; a title band, then two rows.
    with Image.open(montage) as image:
        assert image.size == (3 * MONTAGE_HEIGHT + 4 * 4, 20 + 2 * (20 + MONTAGE_HEIGHT + 4))


def test_without_ref_only_niqe_and_brightness(tmp_path: Path) -> None:
    _write(tmp_path / "pred", "only.png", _bright(3))
    out = tmp_path / "s.json"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--json", str(out)]) == 0
    report = _read_json(out)
    assert set(report["images"][0]) == {"name", "niqe", "brightness"}
    assert set(report["mean"]) == {"niqe", "brightness", "count"}


def test_bad_files_are_reported_and_the_rest_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    good = _write(pred, "good.png", _bright(1))
    _write(ref, "good.png", _bright(2))
    _write(pred, "small.png", _bright(3, (80, 120)))
    _write(ref, "small.png", _bright(4, (80, 120)))
    _write(pred, "mismatch.png", _bright(5))
    _write(ref, "mismatch.png", _bright(6, (SIZE, SIZE + 10)))
    _write(pred, "noref.png", _bright(7))
    (pred / "broken.png").write_bytes(b"this is not a png")
    _write(ref, "broken.png", _bright(8))
    (pred / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "s.json"

    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--json", str(out)]) == 1

    report = _read_json(out)
    assert [e["name"] for e in report["images"]] == ["good.png"]
    assert report["images"][0]["niqe"] == pytest.approx(niqe(good))
    errors = {e["name"]: e["error"] for e in report["errors"]}
    assert set(errors) == {"small.png", "mismatch.png", "noref.png", "broken.png"}
    assert "smaller than one 96x96" in errors["small.png"]
    assert "differ in size" in errors["mismatch.png"]
    assert "no reference named noref" in errors["noref.png"]
    assert "cannot read" in errors["broken.png"]
    stderr = capsys.readouterr().err
    for name in errors:
        assert f"error: {name}:" in stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --pred DIR"),
        (["--pred", "{tmp}/pred", "--baseline", "gamma"], "choose one of"),
        (["--pred", "{tmp}/missing"], "does not exist"),
        (["--pred", "{tmp}/empty"], "holds no images"),
        (["--pred", "{tmp}/pred", "--montage", "{tmp}/m.jpg"], "ending in .png"),
        (["--pred", "{tmp}/pred", "--save", "{tmp}/out"], "nothing is enhanced"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _write(tmp_path / "pred", "a.png", _bright(1))
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", *[a.format(tmp=tmp_path) for a in argv]]) == 2
    assert message in capsys.readouterr().err


def test_baseline_enhances_saves_and_scores(tmp_path: Path) -> None:
    lows = {
        n: _write(tmp_path / "low", f"{n}.png", make_dark_rgb(SIZE, SIZE, seed=i)) for i, n in enumerate("xy")
    }
    for i, n in enumerate("xy"):
        _write(tmp_path / "ref", f"{n}.png", _bright(i))
    out, saved = tmp_path / "s.json", tmp_path / "enhanced"
    argv = ["evaluate", "--baseline", "gamma", "--low", str(tmp_path / "low"), "--ref", str(tmp_path / "ref")]
    assert main([*argv, "--json", str(out), "--save", str(saved)]) == 0
    report = _read_json(out)
    for entry in report["images"]:
        stem = entry["name"][0]
        expected = gamma_baseline(lows[stem])
        np.testing.assert_array_equal(np.asarray(Image.open(saved / f"{stem}.png")), expected)
        assert entry["niqe"] == pytest.approx(niqe(expected))
        assert entry["brightness"] == pytest.approx(0.45 * 255, abs=3)


# --- enhancing with a model ----------------------------------------------------------------------


def test_weights_enhance_then_score(tmp_path: Path) -> None:
    inference = pytest.importorskip("enlightengan.inference")
    from enlightengan.models.checkpoint import save_generator
    from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig

    weights = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4)).eval(), tmp_path / "g.safetensors"
    )
    low = _write(tmp_path / "low", "p.png", make_dark_rgb(SIZE, SIZE, seed=1))
    out = tmp_path / "s.json"
    argv = ["evaluate", "--weights", str(weights), "--low", str(tmp_path / "low"), "--device", "cpu"]
    assert main([*argv, "--json", str(out)]) == 0
    expected = np.asarray(
        inference.Enhancer(weights, device="cpu").enhance(Image.fromarray(low)).convert("RGB")
    )
    entry = _read_json(out)["images"][0]
    assert entry["niqe"] == pytest.approx(niqe(expected))
    assert entry["brightness"] == pytest.approx(brightness(expected))


def test_progress_per_image_and_per_tile_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from enlightengan.inference import tiling
    from enlightengan.models.checkpoint import save_generator

    from .conftest import randomised_generator

    weights = save_generator(randomised_generator(width=4, negative_scales=False), tmp_path / "g.safetensors")
    _write(tmp_path / "low", "small.png", make_dark_rgb(SIZE, SIZE, seed=1))
    _write(tmp_path / "low", "large.png", make_dark_rgb(420, 520, seed=2))
    # 8 MiB of working memory: the 200 x 200 photo runs in one piece, the 420 x 520 one in tiles
    # (of at least 384 px)
    monkeypatch.setattr(tiling, "DEFAULT_MEMORY_CAP", 8 << 20)
    assert main(["evaluate", "--weights", str(weights), "--low", str(tmp_path / "low")]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()  # not a terminal: plain lines, no bar
    assert lines[0] == "[1/2] large.png"
    tiles = [re.fullmatch(r"\[1/2\] large\.png: tile (\d+)/(\d+)", line) for line in lines[1:-1]]
    assert all(tiles) and len(tiles) > 1  # every tile of the large photo, in order
    assert [int(m[1]) for m in tiles if m] == list(range(1, len(tiles) + 1))
    assert {int(m[2]) for m in tiles if m} == {len(tiles)}
    assert lines[-1] == "[2/2] small.png"  # the small photo: one piece, no tile lines
    assert "[" not in captured.out  # stdout holds the table only
    assert captured.out.splitlines()[1].startswith("image ")


def test_save_folder_is_made_only_for_what_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "low").mkdir()
    (tmp_path / "low" / "broken.png").write_bytes(b"not a picture")
    save = tmp_path / "saved" / "nested"
    assert main(["evaluate", "--baseline", "gamma", "--low", str(tmp_path / "low"), "--save", str(save)]) == 1
    assert not (tmp_path / "saved").exists()  # nothing could be enhanced: no empty folder
    _write(tmp_path / "low", "good.png", make_dark_rgb(SIZE, SIZE))
    assert main(["evaluate", "--baseline", "gamma", "--low", str(tmp_path / "low"), "--save", str(save)]) == 1
    assert [p.name for p in save.iterdir()] == ["good.png"]
    (tmp_path / "file").write_text("x")
    assert (
        main(
            [
                "evaluate",
                "--baseline",
                "gamma",
                "--low",
                str(tmp_path / "low"),
                "--save",
                str(tmp_path / "file"),
            ]
        )
        == 2
    )
    assert "is not a folder" in capsys.readouterr().err


def test_unloadable_weights_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("enlightengan.inference")
    _write(tmp_path / "low", "p.png", make_dark_rgb(SIZE, SIZE))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    assert main(["evaluate", "--weights", str(bad), "--low", str(tmp_path / "low"), "--device", "cpu"]) == 2
    assert "cannot load the enhancer" in capsys.readouterr().err


# --- real LOL pairs -------------------------------------------------------------------------------


def test_two_lol_pairs(shared_dir: Path, tmp_path: Path) -> None:
    metrics = pytest.importorskip("skimage.metrics")
    lol = data_file(shared_dir, "datasets", "lol_eval15")
    if not lol.is_dir():
        pytest.skip(f"{lol} is not present")
    names = sorted(p.name for p in (lol / "low").iterdir())[:2]
    for sub in ("low", "high"):
        (tmp_path / sub).mkdir()
        for name in names:
            shutil.copy(lol / sub / name, tmp_path / sub / name)
    out = tmp_path / "s.json"
    assert (
        main(
            ["evaluate", "--pred", str(tmp_path / "low"), "--ref", str(tmp_path / "high"), "--json", str(out)]
        )
        == 0
    )
    for entry in _read_json(out)["images"]:
        low = np.asarray(Image.open(lol / "low" / entry["name"]).convert("RGB"))
        high = np.asarray(Image.open(lol / "high" / entry["name"]).convert("RGB"))
        assert entry["psnr"] == pytest.approx(metrics.peak_signal_noise_ratio(high, low, data_range=255))
        ref_ssim = metrics.structural_similarity(
            low, high, channel_axis=-1, gaussian_weights=True, use_sample_covariance=False, data_range=255
        )
        assert entry["ssim"] == pytest.approx(ref_ssim)
        assert 0 < entry["brightness"] < 60  # LOL inputs are dark


# --- baselines ------------------------------------------------------------------------------------


def test_gamma_with_given_exponent_hand_values() -> None:
    image = np.array([[[0, 64, 255]]], dtype=np.uint8)
    # 255 * sqrt(64 / 255) = 127.75 -> 128; 0 and 255 are fixed points.
    np.testing.assert_array_equal(gamma_baseline(image, gamma=0.5), [[[0, 128, 255]]])


@pytest.mark.parametrize(("scale", "brightens"), [(1, True), (8, False)])
def test_automatic_gamma_reaches_target_luminance(scale: int, brightens: bool) -> None:
    image = np.clip(make_dark_rgb(120, 160).astype(np.int32) * scale, 0, 255).astype(np.uint8)
    assert (brightness(image) / 255 < 0.45) == brightens
    gamma = choose_gamma(image)
    assert (gamma < 1) == brightens
    assert brightness(gamma_baseline(image)) / 255 == pytest.approx(0.45, abs=0.01)


def test_gamma_on_black_image_stays_black() -> None:
    black = np.zeros((20, 20, 3), np.uint8)
    np.testing.assert_array_equal(gamma_baseline(black), black)


def test_clahe_brightens_dark_image_and_keeps_neutral_grey() -> None:
    dark = make_dark_rgb(120, 160)
    out = clahe_baseline(dark)
    assert out.shape == dark.shape and out.dtype == np.uint8
    assert brightness(out) > brightness(dark) + 10
    grey = np.repeat(make_dark_rgb(120, 160)[:, :, :1], 3, axis=2)
    neutral = clahe_baseline(grey).astype(np.int32)
    assert np.abs(neutral[:, :, 0] - neutral[:, :, 1]).max() <= 1
    assert np.abs(neutral[:, :, 2] - neutral[:, :, 1]).max() <= 1


def test_baselines_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        gamma_baseline(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        clahe_baseline(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="positive"):
        gamma_baseline(np.zeros((10, 10, 3), np.uint8), gamma=-1.0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        choose_gamma(np.zeros((10, 10, 3), np.uint8), target=1.5)
