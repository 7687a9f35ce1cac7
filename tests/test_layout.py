"""The digest as readers see it: laid out by Chromium on a phone and a desktop, light and dark.

Each sample variant (support/digests.py) is opened at 320, 375 and 640 px wide, with its
<style> blocks and without them (as Gmail's app and many webmail clients show it), in light
mode and in dark mode (``prefers-color-scheme: dark``). For each we assert, from the layout and
the computed styles: no horizontal scrolling, no image wider than its column, and a WCAG AA
contrast (4.5:1) for every visible text — in that mode and under a forced inversion of its
colours (what Gmail's and Outlook's apps do to mail that does not handle dark mode itself).
The teaser's call to action must stay its most prominent element. Under Chromium's own
forced dark mode (which recolours at paint time) the painted pixels are read instead.
Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re

import png
import pytest

from support.browser import another_browser, screenshot
from support.digests import SAMPLES, sample_html
from support.golden import assert_golden, scrub

AA = 4.5
# A small picture for the feed images: the test sees real image layout without a network.
PICTURE = (b'<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="800">'
           b'<rect width="1200" height="800" fill="#4a7a96"/></svg>')

MEASURE = """() => {
  const rgba = c => { const p = c.match(/[\\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) return c;
    }
    return rgba(getComputedStyle(document.documentElement).backgroundColor || 'rgb(255,255,255)');
  };
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim()) continue;
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    texts.push({text: node.textContent.trim().slice(0, 50), color: rgba(style.color),
                background: background(el)});
  }
  const columns = [...document.querySelectorAll('td.post, td.masthead, td.footer')];
  const images = [...document.querySelectorAll('img')].map(img => {
    const cell = img.closest('td');
    return {right: img.getBoundingClientRect().right, cell: cell.getBoundingClientRect().right,
            width: img.getBoundingClientRect().width, cellWidth: cell.clientWidth};
  });
  const teasers = [...document.querySelectorAll('td.post')].filter(td => td.querySelector('.button'))
    .map(td => {
      const button = td.querySelector('.button');
      const others = [...td.querySelectorAll('*')].filter(e => e !== button && !button.contains(e));
      return {button: background(button), cell: background(td),
              buttonWeight: Number(getComputedStyle(button).fontWeight),
              otherFills: others.map(e => rgba(getComputedStyle(e).backgroundColor))
                                .filter(c => c[3] > 0)};
    });
  return {overflow: document.documentElement.scrollWidth - window.innerWidth,
          bodyOverflow: document.body.scrollWidth - window.innerWidth,
          texts, images, teasers, columns: columns.length};
}"""


def luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: list[float], b: list[float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def inverted(rgb: list[float]) -> list[float]:
    """The colour a client's forced dark mode makes of it: lightness inverted in CIELAB, hue
    kept (the model of Chromium's force-dark and of the Gmail and Outlook apps)."""
    def to_linear(v: float) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def to_srgb(c: float) -> float:
        c = min(max(c, 0.0), 1.0)
        return 255 * (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)

    r, g, b = (to_linear(v) for v in rgb[:3])
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    lightness, a, bb = 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
    lightness = 100 - lightness
    fy = (lightness + 16) / 116
    fx, fz = fy + a / 500, fy - bb / 200
    back = [t ** 3 if t ** 3 > 0.008856 else (t - 16 / 116) / 7.787 for t in (fx, fy, fz)]
    x, y, z = back[0] * 0.95047, back[1], back[2] * 1.08883
    r = 3.2406 * x - 1.5372 * y - 0.4986 * z
    g = -0.9689 * x + 1.8758 * y + 0.0415 * z
    b = 0.0557 * x - 0.2040 * y + 1.0570 * z
    return [to_srgb(r), to_srgb(g), to_srgb(b)]


def without_style_blocks(html: str) -> str:
    return re.sub(r"<style\b.*?</style>", "", html, flags=re.DOTALL | re.IGNORECASE)


def open_digest(browser: object, html: str, width: int, scheme: str) -> object:
    context = browser.new_context(viewport={"width": width, "height": 900},  # type: ignore[attr-defined]
                                  color_scheme=scheme)
    page = context.new_page()
    page.route("https://news.example.com/images/**",
               lambda route: route.fulfill(body=PICTURE, content_type="image/svg+xml"))
    page.route(re.compile(r"^(?!https://news\.example\.com/images/).*"),
               lambda route: route.abort())
    page.set_content(html, wait_until="load")
    return page


def check_layout(found: dict, where: str) -> None:
    assert found["overflow"] <= 0 and found["bodyOverflow"] <= 0, \
        f"{where}: scrolls sideways by {max(found['overflow'], found['bodyOverflow'])} px"
    assert found["columns"] >= 3
    for image in found["images"]:
        assert image["right"] <= image["cell"] + 0.5, f"{where}: an image sticks out of its cell"
        assert image["width"] <= image["cellWidth"] + 0.5


def check_contrast(found: dict, where: str, *, invert: bool) -> None:
    problems = []
    for text in found["texts"]:
        fg, bg = text["color"], text["background"]
        if invert:
            fg, bg = inverted(fg), inverted(bg)
        ratio = contrast(fg, bg)
        if ratio < AA:
            problems.append(f"{text['text']!r} {ratio:.2f}:1")
    assert not problems, f"{where}{' inverted' if invert else ''}: below 4.5:1: {problems}"
    for teaser in found["teasers"]:
        button, cell = teaser["button"], teaser["cell"]
        if invert:
            button, cell = inverted(button), inverted(cell)
            fills = [inverted(c) for c in teaser["otherFills"]]
        else:
            fills = teaser["otherFills"]
        standout = contrast(button, cell)
        assert standout >= 3, f"{where}: the call to action blends in ({standout:.2f}:1)"
        assert teaser["buttonWeight"] >= 700
        assert all(contrast(fill, cell) < standout for fill in fills), \
            f"{where}: something in the teaser stands out more than its call to action"


@pytest.fixture(scope="module")
def samples() -> dict[str, str]:
    return {sample.name: sample_html(sample) for sample in SAMPLES}


@pytest.mark.parametrize("sample", [s.name for s in SAMPLES])
def test_each_variant_matches_its_golden_html(samples, sample):
    assert_golden(f"layout_{sample}.html", scrub(samples[sample]))


@pytest.mark.parametrize("styles", ["with-style", "no-style"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_sideways_scroll_and_readable_text_on_phones_and_desktops(browser, samples, styles,
                                                                      scheme):
    for name, html in samples.items():
        page_html = html if styles == "with-style" else without_style_blocks(html)
        for width in (320, 375, 640):
            page = open_digest(browser, page_html, width, scheme)
            where = f"{name} at {width}px, {scheme}, {styles}"
            try:
                found = page.evaluate(MEASURE)
                check_layout(found, where)
                check_contrast(found, where, invert=False)
                if scheme == "light":
                    check_contrast(found, where, invert=True)
                if name in ("mixed", "long") and width == 375:
                    screenshot(page, f"digest-{name}-{width}-{scheme}-{styles}")
            finally:
                page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_on_a_desktop_the_column_stays_640_px_and_centred(browser, samples, scheme):
    page = open_digest(browser, samples["mixed"], 1280, scheme)
    try:
        found = page.evaluate(MEASURE)
        check_layout(found, f"mixed at 1280px, {scheme}")
        check_contrast(found, f"mixed at 1280px, {scheme}", invert=False)
        box = page.locator("table.container").bounding_box()
        assert box["width"] == 640 and abs(box["x"] - (1280 - 640) / 2) <= 1
        screenshot(page, f"digest-mixed-1280-{scheme}")
    finally:
        page.context.close()


def test_the_dark_rules_change_the_colours_only_when_the_style_block_is_kept(browser, samples):
    html = samples["mixed"]
    colours = {}
    for label, content, scheme in (("light", html, "light"), ("dark", html, "dark"),
                                   ("dark-no-style", without_style_blocks(html), "dark")):
        page = open_digest(browser, content, 375, scheme)
        try:
            colours[label] = page.evaluate(
                "() => getComputedStyle(document.querySelector('td.post')).color")
        finally:
            page.context.close()
    assert colours["dark"] != colours["light"]
    assert colours["dark-no-style"] == colours["light"]


def pixel(page: object, x: float, y: float) -> list[int]:
    """The colour Chromium painted at (x, y), read from a one-pixel screenshot."""
    shot = page.screenshot(clip={"x": x, "y": y, "width": 1, "height": 1})  # type: ignore[attr-defined]
    _width, _height, rows, info = png.Reader(bytes=shot).asRGBA8()
    return list(next(iter(rows)))[:3]


TEXT_BOXES = """() => [...document.querySelectorAll('body *')]
  .filter(el => [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
  .filter(el => el.checkVisibility({opacityProperty: true, visibilityProperty: true}))
  .map(el => { const r = el.getBoundingClientRect();
               return {text: el.textContent.trim().slice(0, 40), x: r.x, y: r.y + scrollY,
                       width: r.width, height: r.height}; })
  .filter(box => box.width >= 4 && box.height >= 4)"""


def painted_contrast(page: object, box: dict) -> float:
    """The contrast Chromium painted inside a text's box: its most common colour (the
    background) against the pixel farthest from it (the core of a glyph; anti-aliasing only
    lowers contrast, so this is the text's own colour)."""
    shot = page.screenshot(full_page=True, clip={  # type: ignore[attr-defined]
        "x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]})
    _w, _h, rows, _info = png.Reader(bytes=shot).asRGBA8()
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for i in range(0, len(row), 4):
            colour = (row[i], row[i + 1], row[i + 2])
            counts[colour] = counts.get(colour, 0) + 1
    background = max(counts, key=counts.get)
    return max(contrast(list(colour), list(background)) for colour in counts)


@pytest.mark.parametrize("sample", ["mixed", "no-name"])
def test_every_text_keeps_its_contrast_under_chromiums_forced_dark_mode(browser, samples,
                                                                        sample):
    with another_browser(browser, "--force-dark-mode",
                         "--blink-settings=forceDarkModeEnabled=true") as dark:
        page = open_digest(dark, without_style_blocks(samples[sample]), 375, "light")
        try:
            problems = [f"{box['text']!r} {ratio:.2f}:1" for box in page.evaluate(TEXT_BOXES)
                        if (ratio := painted_contrast(page, box)) < AA]
        finally:
            page.context.close()
    assert problems == [], f"below 4.5:1 as painted under forced dark mode: {problems}"


def test_the_call_to_action_stands_out_under_chromiums_forced_dark_mode(browser, samples):
    # Chromium recolours at paint time (computed styles do not change), so the colours are
    # read from the painted pixels: inside the button's padding, and the cell beside it.
    with another_browser(browser, "--force-dark-mode",
                         "--blink-settings=forceDarkModeEnabled=true") as dark:
        for width in (375, 1280):
            page = open_digest(dark, samples["mixed"], width, "light")
            try:
                assert page.evaluate(MEASURE)["overflow"] <= 0
                box = page.locator(".button").first.bounding_box()
                cell = page.locator("td.post").first.bounding_box()
                button = pixel(page, box["x"] + 4, box["y"] + 4)
                around = pixel(page, cell["x"] + 2, box["y"] + 4)
                assert luminance(around) < 0.2, "Chromium's forced dark mode did not apply"
                assert contrast(button, around) >= 3, (button, around)
                screenshot(page, f"digest-mixed-{width}-forced-dark")
            finally:
                page.context.close()
