"""The page of ``enlightengan serve`` in real headless Chromium: upload, result, strength, download.

Needs Debian's ``chromium`` (``bash scripts/install_chromium.sh``) and the ``playwright`` Python package
(its own browser downloads are not used); skips when either is absent. A screenshot is saved under the
test's temporary folder; with ``ENLIGHTENGAN_UPDATE_SCREENSHOT=1`` the README's picture,
``docs/screenshot-serve.png``, is made as well, from two darkened scikit-image sample photos, with the
generator that ``enlightengan serve`` would use (``$ENLIGHTENGAN_WEIGHTS``, else the bundled default
model), or the closed-form stand-in of the tests while there is none.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from enlightengan.image_io import read_image
from enlightengan.inference import Enhancer
from enlightengan.weights import NoDefaultWeightsError, resolve_weights

from .conftest import (
    REPO,
    bayer_mosaic,
    brightening_generator,
    dark_scene,
    decode,
    expected_brightening,
    make_dark_rgb,
    write_dng,
    write_heic,
)

pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")  # the serve extra (test_server above skips too without it)

from playwright.sync_api import sync_playwright

from enlightengan.server import ServerConfig, create_app, serve_in_background

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (bash scripts/install_chromium.sh)"
)

#: Reads an <img> back through a canvas: [width, height, RGBA bytes...] as the page shows it.
PIXELS_JS = """(img) => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    return [canvas.width, canvas.height, ...context.getImageData(0, 0, canvas.width, canvas.height).data];
}"""

#: Moves a range input as a person would: the value changes, then "input" and "change" fire.
SET_RANGE_JS = """(element, value) => {
    element.value = value;
    element.dispatchEvent(new Event("input", { bubbles: true }));
    element.dispatchEvent(new Event("change", { bubbles: true }));
}"""


def shown_rgb(locator: Any) -> np.ndarray:
    values = locator.evaluate(PIXELS_JS)
    width, height = values[0], values[1]
    return np.asarray(values[2:], dtype=np.uint8).reshape(height, width, 4)[..., :3]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.mark.slow
def test_upload_compare_strength_download(browser: Any, tmp_path: Path) -> None:
    rgb = make_dark_rgb(120, 160, seed=11)
    good, broken = tmp_path / "good.png", tmp_path / "broken.png"
    Image.fromarray(rgb).save(good)
    broken.write_text("this is not a picture\n")
    enhancer = Enhancer(model=brightening_generator(), device="cpu")
    server_tmp = tmp_path / "server"
    server_tmp.mkdir()

    with serve_in_background(create_app(enhancer, ServerConfig(temp_root=server_tmp))) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(url)
        page.wait_for_selector("#limits:not(:empty)")  # the server's limits were read
        page.set_input_files("#file-input", [str(good), str(broken)])

        card = page.locator(".card", has_text="good.png")
        failed = page.locator(".card", has_text="broken.png")
        page.wait_for_selector('.card[data-state="done"]', timeout=30_000)
        page.wait_for_selector('.card[data-state="error"]', timeout=30_000)
        assert page.locator("#strength").get_attribute("max") == "2"  # the server's range (0 to 2)

        # a failed file: an error card with the reason, no (broken) pictures, nothing to download
        assert failed.locator(".status").inner_text() == "failed"
        reason = failed.locator(".failure")
        assert reason.is_visible() and "not an image" in reason.locator(".reason").inner_text()
        for hidden in (".compare", ".download", ".full"):
            assert not failed.locator(hidden).is_visible(), hidden
        header, box = failed.locator("header").bounding_box(), reason.bounding_box()
        assert header is not None and box is not None and box["y"] >= header["y"] + header["height"]
        assert not card.locator(".failure").is_visible()

        # what the page shows: the photo as sent, and the enhancement the hand formula predicts
        assert np.array_equal(shown_rgb(card.locator(".before")), rgb)
        after = shown_rgb(card.locator(".after")).astype(int)
        assert np.abs(after - expected_brightening(rgb, 1.0)).max() <= 1

        with page.expect_download() as download_info:
            card.locator(".download").click()
        download = download_info.value
        assert download.suggested_filename == "good-enhanced.png"
        saved = np.asarray(decode(Path(download.path()).read_bytes())).astype(int)
        assert np.abs(saved - expected_brightening(rgb, 1.0)).max() <= 1

        # the result at full size, pixel for pixel, in a new tab (the preview is scaled to the card)
        full = card.locator(".full")
        assert full.get_attribute("target") == "_blank"
        assert full.get_attribute("href") == card.locator(".download").get_attribute("href")
        with page.expect_popup() as popup_info:
            full.click()
        popup = popup_info.value
        popup.wait_for_load_state()
        assert popup.url.startswith("blob:")
        shown = shown_rgb(popup.locator("img")).astype(int)
        assert shown.shape == (*rgb.shape[:2], 3)  # 160 x 120, the result's own size
        assert np.abs(shown - expected_brightening(rgb, 1.0)).max() <= 1
        popup.close()

        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        with Image.open(shot) as image:
            assert image.format == "PNG" and image.width == 1280

        # the divider moves the split between before and after
        card.locator(".divider").evaluate(SET_RANGE_JS, "20")
        split = card.locator(".compare").evaluate("e => e.style.getPropertyValue('--split')")
        assert split == "20%"

        # strength 0: every photo is enhanced again and comes back unchanged
        page.locator("#strength").evaluate(SET_RANGE_JS, "0")
        page.wait_for_selector('.card[data-state="done"][data-strength="0"]', timeout=30_000)
        assert np.array_equal(shown_rgb(card.locator(".after")), rgb)
        assert page.locator("#strength-value").inner_text() == "0.00"
        page.close()
    assert list(server_tmp.iterdir()) == []

    if os.environ.get("ENLIGHTENGAN_UPDATE_SCREENSHOT") == "1":
        _readme_screenshot(browser, tmp_path)


@pytest.mark.slow
def test_the_spare_box_leaves_well_exposed_photos_as_they_are(browser: Any, tmp_path: Path) -> None:
    checker = (np.indices((48, 64)).sum(axis=0) % 2) * 24 - 12
    bright = np.repeat((128 + checker)[..., None], 3, axis=2).astype(np.uint8)  # mean brightness 0.5
    path = tmp_path / "bright.png"
    Image.fromarray(bright).save(path)
    enhancer = Enhancer(model=brightening_generator(), device="cpu")  # no fade of its own
    with serve_in_background(create_app(enhancer, ServerConfig(temp_root=tmp_path))) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#limits:not(:empty)")
        page.set_input_files("#file-input", [str(path)])
        card = page.locator(".card", has_text="bright.png")
        page.wait_for_selector('.card[data-state="done"][data-spare="false"]', timeout=30_000)
        after = shown_rgb(card.locator(".after")).astype(int)
        assert np.abs(after - expected_brightening(bright, 1.0)).max() <= 1  # brightened by default
        page.locator("#spare").check()
        page.wait_for_selector('.card[data-state="done"][data-spare="true"]', timeout=30_000)
        assert np.array_equal(shown_rgb(card.locator(".after")), bright)  # sent again: left as it is
        assert "well-exposed spared" in card.locator(".status").inner_text()
        page.close()


@pytest.mark.slow
def test_heic_and_raw_files_are_taken_and_their_results_shown(browser: Any, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    pytest.importorskip("rawpy")
    rgb = make_dark_rgb(40, 64, seed=12)
    heic = write_heic(tmp_path / "IMG_0042.heic", rgb)
    mosaic = np.round(bayer_mosaic(dark_scene(40, 64)) * 16383).astype(np.uint16)
    dng = write_dng(tmp_path / "DSC_0815.dng", mosaic)
    enhancer = Enhancer(model=brightening_generator(), device="cpu")
    # what the page should show for the RAW file: its 16-bit result, on an 8-bit canvas
    raw_result = enhancer.enhance(read_image(dng).pixels).astype(np.float64) / 257

    with serve_in_background(create_app(enhancer, ServerConfig(temp_root=tmp_path))) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#limits:not(:empty)")
        # as browsers that know neither type hand them over: by name, with no image/ type
        page.set_input_files(
            "#file-input",
            [
                {"name": path.name, "mimeType": "application/octet-stream", "buffer": path.read_bytes()}
                for path in (heic, dng)
            ],
        )
        assert page.locator("#notice").inner_text() == ""  # neither was skipped as "not an image"
        for name in ("IMG_0042.heic", "DSC_0815.dng"):
            page.locator(".card", has_text=name).locator('xpath=self::*[@data-state="done"]').wait_for(
                timeout=30_000
            )
        after = shown_rgb(page.locator(".card", has_text="IMG_0042.heic").locator(".after")).astype(int)
        assert np.abs(after - expected_brightening(rgb, 1.0)).max() <= 1
        after = shown_rgb(page.locator(".card", has_text="DSC_0815.dng").locator(".after")).astype(int)
        assert after.shape == raw_result.shape and np.abs(after - raw_result).max() <= 1
        link = page.locator(".card", has_text="DSC_0815.dng").locator(".download")
        assert link.get_attribute("download") == "DSC_0815-enhanced.png"
        page.close()


def _dark_samples() -> list[tuple[str, np.ndarray]]:
    try:
        from skimage import data
    except ImportError:
        return [
            ("street.png", make_dark_rgb(480, 640, seed=1)),
            ("room.png", make_dark_rgb(480, 640, seed=2)),
        ]
    # A low-light look: darker overall and darker still in the shadows (gamma 2).
    samples = [("coffee.png", data.coffee()), ("chelsea.png", data.chelsea())]
    return [(name, np.round(255 * 0.3 * (rgb / 255.0) ** 2).astype(np.uint8)) for name, rgb in samples]


def _readme_screenshot(browser: Any, tmp_path: Path) -> None:
    try:
        enhancer = Enhancer(resolve_weights(), device="cpu")
    except NoDefaultWeightsError:
        enhancer = Enhancer(model=brightening_generator(), device="cpu")
    paths = []
    for name, rgb in _dark_samples():
        paths.append(tmp_path / name)
        Image.fromarray(rgb).save(paths[-1])
    with serve_in_background(create_app(enhancer, ServerConfig(temp_root=tmp_path))) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(url)
        page.wait_for_selector("#limits:not(:empty)")  # the server's limits were read
        page.set_input_files("#file-input", [str(path) for path in paths])
        for index in range(len(paths)):
            page.locator('.card[data-state="done"]').nth(index).wait_for(timeout=120_000)
        target = REPO / "docs" / "screenshot-serve.png"
        target.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(target), full_page=True)
        page.close()
