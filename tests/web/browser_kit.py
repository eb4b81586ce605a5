"""Playwright helpers: screenshots at phone and desktop widths, and an axe-core check."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web.kit import AXE, SCREENSHOTS

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
BLOCKING = ("serious", "critical")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2.0/2.1 A and AA rules and best practices) in the page."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})")
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]


def review(browser: Browser, url: str, name: str, storage_state: Any = None) -> None:
    """Screenshot ``url`` at both widths and assert axe finds nothing serious.

    A separate context bypasses the page's CSP only so that axe can be injected; the journey
    itself runs under the real CSP.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(bypass_csp=True, storage_state=storage_state, locale="fr-FR")
    try:
        page = context.new_page()
        for label, size in VIEWPORTS.items():
            page.set_viewport_size(size)  # type: ignore[arg-type]
            response = page.goto(url)
            assert response is not None and response.status == 200, url
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
            problems = axe_violations(page)
            assert not problems, [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
                                  for v in problems]
            overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
            assert not overflow, f"{name} scrolls sideways at {label} width"
    finally:
        context.close()
