"""``make console-screenshots``: docs/console/*.png, the queue and a review, from ``make console`` in headless
Chromium at 1280x800 (images blurred, as a moderator first sees them), and the stats after three
decisions."""

from __future__ import annotations

import sys
from pathlib import Path

from local.browser import chromium, running_console

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console"
# The review shown: an animation, so that its frames are in the picture with the providers' scores.
DETAIL_KEY = "uploads/animated.gif"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with running_console() as console, chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(console.url)
        page.wait_for_selector("#items[aria-busy=false] .item img.shot")
        page.wait_for_load_state("networkidle")
        page.keyboard.press("j")
        page.mouse.move(0, 0)
        page.screenshot(path=str(OUT / "queue.png"))
        page.locator("#items .item", has=page.locator(".key", has_text=DETAIL_KEY)).locator("a.key").click()
        page.wait_for_selector(".frames .frame")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(OUT / "detail.png"), full_page=True)
        # A few decisions, so that the stats have decisions and a precision to draw.
        page.goto(console.url)
        for key, reason in (("j", None), ("r", "explicit"), ("r", "AI-made, not disclosed")):
            page.wait_for_selector("#items[aria-busy=false] .item")
            page.keyboard.press("a" if key == "j" else key)
            if reason:
                page.wait_for_selector("#reason-dialog[open]")
                page.keyboard.type(reason)
                page.keyboard.press("Enter")
            page.wait_for_selector(".notice")
            page.wait_for_selector("#items[aria-busy=false]")
            page.evaluate("document.getElementById('notices').replaceChildren()")
        page.goto(console.url + "#/stats")
        page.reload()  # without the decisions' notices
        page.wait_for_selector(".chart-grid")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(OUT / "stats.png"), full_page=True)
        context.close()
    for name in ("queue.png", "detail.png", "stats.png"):
        print(f"wrote {(OUT / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
