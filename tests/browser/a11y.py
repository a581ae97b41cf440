"""Accessibility and weight checks the browser tests run on every page they open.

- every visible form field and button has a label or an accessible name, every image an alt;
- text meets the WCAG AA contrast ratio against the background it is drawn on (4.5, or 3
  for large text);
- headings and landmarks: one h1, a main, a skip link;
- the page, with everything it loaded, is under 200 KB transferred.
"""

from __future__ import annotations

from typing import Any

from creditgate.portal.web import contrast

MAX_PAGE_BYTES = 200 * 1024

UNLABELED = """() => [...document.querySelectorAll(
      'input:not([type=hidden]), select, textarea, button')]
    .filter(e => e.offsetParent !== null)
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.getAttribute('aria-labelledby') && !e.textContent.trim())
    .map(e => e.outerHTML)"""

NO_ALT = """() => [...document.querySelectorAll('img')].filter(i => !i.hasAttribute('alt'))
    .map(i => i.outerHTML)"""

# Each visible element with text of its own: its colour, the background it sits on (the
# nearest ancestor's opaque one), and whether it is large text.
TEXT_COLOURS = """() => {
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && c !== 'transparent' && !c.startsWith('rgba(0, 0, 0, 0')) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    if (e.closest('svg') || e.offsetParent === null) continue;
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const s = getComputedStyle(e);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    out.push({text: e.textContent.trim().slice(0, 40), color: s.color, bg: background(e),
              large: size >= 24 || (bold && size >= 18.66)});
  }
  return out;
}"""


def hex_colour(css: str) -> str:
    r, g, b = (int(float(p)) for p in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def transferred(request: Any) -> int:
    sizes = request.sizes()
    return int(sizes["responseBodySize"] + sizes["responseHeadersSize"])


def weigh(page: Any) -> list[int]:
    """Start counting the bytes of everything the page loads from now on."""
    sizes: list[int] = []
    page.on("requestfinished", lambda r: sizes.append(transferred(r)))
    return sizes


def check_page(page: Any, sizes: list[int] | None = None) -> None:
    """The checks above on the page as it is now; `sizes` from weigh() before it loaded."""
    assert page.evaluate(UNLABELED) == []
    assert page.evaluate(NO_ALT) == []
    assert page.locator("h1").count() == 1
    assert page.locator("main#main").count() == 1
    assert page.locator("a.skip[href='#main']").count() == 1
    low = []
    for item in page.evaluate(TEXT_COLOURS):
        ratio = contrast(hex_colour(item["color"]), hex_colour(item["bg"]))
        if ratio < (3.0 if item["large"] else 4.5):
            low.append((item["text"], item["color"], item["bg"], round(ratio, 2)))
    assert low == [], low
    if sizes is not None:
        assert 0 < sum(sizes) < MAX_PAGE_BYTES, sizes


def tab_to(page: Any, locator: Any, *, presses: int = 60) -> None:
    """Press Tab until `locator` has the focus: it is reachable from the keyboard alone."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if locator.evaluate("e => e === document.activeElement"):
            return
    raise AssertionError(f"Tab never reaches {locator}")
