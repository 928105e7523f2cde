"""A person approves the staging rollout in the real Prefect UI, with a real browser.

The flow runs in the test process (tests/rollout_run.py). When it pauses, the answer
callback opens the run page in headless chromium, clicks "Resume", fills the
ApprovalForm the UI renders from the RunInput's JSON schema and submits it. After the
rollout completes, the browser finds the run's approval record and production
checklist in the UI's artifact pages.

Screenshots go to $MIRROR_ROLLOUT_SCREENSHOTS (default: the test's tmp dir):
``approval-form.png`` (the filled form on the paused run, the README's
docs/img/approval-form.png), ``approval-record.png`` and ``production-checklist.png``;
``failed-*.png`` when a browser step fails. To refresh the README's image:

    MIRROR_ROLLOUT_SCREENSHOTS=out/screenshots .venv/bin/pytest tests/test_browser_approval.py
    cp out/screenshots/approval-form.png docs/img/approval-form.png
    cp out/screenshots/production-checklist.png docs/img/production-checklist.png

Needs the system's chromium at /usr/bin/chromium (Debian package ``chromium``);
Playwright only drives it, no browser is downloaded.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.rollout_run import artifacts_of

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these chromium phones home and the closed network refuses its connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
#: Bounded waits for the UI (page loads, the form's schema, state changes).
UI_TIMEOUT_MS = 30_000

REVIEWER = "Rita Reviewer (browser)"
COMMENT = "plan matches the ticket; approved in the Prefect UI"

# CI (`.ci/run`) installs chromium, so there a missing browser is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason=f"no system chromium at {CHROMIUM} (apt-get install chromium); the browser test drives it",
)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    configured = os.environ.get("MIRROR_ROLLOUT_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def browser_page(base_url: str, failure_png: Path):
    """A fresh headless chromium (own profile) with one 1280x800 page on the Prefect UI.

    If the block fails, what the page showed is saved to ``failure_png``.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.new_page()
            try:
                log_in(page)
                yield page
            except BaseException:
                with suppress(Exception):
                    page.screenshot(path=failure_png)
                raise
        finally:
            browser.close()


def log_in(page) -> None:
    """Sign in as the UI asks when the API requires PREFECT_API_AUTH_STRING (the sandbox does)."""
    from playwright.sync_api import expect

    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if not auth:
        return
    page.goto("/")
    password = page.get_by_placeholder("admin:pass")
    password.fill(auth)
    page.get_by_role("button", name="Login").click()
    expect(password).to_be_hidden()


def form_field(dialog, label: str):
    """One property of the schema form, found by its label ("Reviewer", "Approve (Optional)").

    The labels' ``for`` ids do not match the inputs, so ``get_by_label`` finds nothing.
    """
    title = re.compile(rf"^{re.escape(label)}( \(Optional\))?$")
    return dialog.locator(".schema-form-property").filter(
        has=dialog.page.locator(".schema-form-property__label", has_text=title)
    )


def approve_in_ui(page, flow_run_id: str, plan_sha256: str, screenshot: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"/runs/flow-run/{flow_run_id}")
    expect(page.get_by_text("Paused", exact=True).first).to_be_visible()
    page.get_by_role("button", name="Resume").click()

    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Resume Flow Run")).to_be_visible()
    expect(dialog.get_by_text("Approve the staging plan (1 of 1 approvals)")).to_be_visible()
    # plan_sha256 is pre-filled with this run's plan; the reviewer does not type it.
    expect(form_field(dialog, "Plan Sha256").locator("textarea")).to_have_value(plan_sha256)

    approve = form_field(dialog, "Approve").get_by_role("switch")
    expect(approve).to_have_attribute("aria-checked", "false")
    approve.click()
    expect(approve).to_have_attribute("aria-checked", "true")
    form_field(dialog, "Reviewer").locator("textarea").fill(REVIEWER)
    form_field(dialog, "Comment").locator("textarea").fill(COMMENT)
    allow_destroy = form_field(dialog, "Allow Destroy").get_by_role("switch")
    expect(allow_destroy).to_have_attribute("aria-checked", "false")
    page.screenshot(path=screenshot)

    submit_until_resumed(page, dialog, flow_run_id)
    expect(dialog).to_be_hidden()


#: Submits of the resume form when the server failed the previous one (HTTP 5xx).
SUBMIT_TRIES = 3


def submit_until_resumed(page, dialog, flow_run_id: str) -> None:
    """Click Submit until the UI says "Flow run resumed"; again only after a server error.

    Prefect's SQLite backend fails a resume with HTTP 500 ("database is locked") when
    another writer commits during it; the UI then shows "Oops. Something went wrong."
    with the form still open and the run still Paused, and a reviewer submits again.
    Any other outcome (no toast, no server error) fails the test.
    """
    resume_url = f"/flow_runs/{flow_run_id}/resume"
    server_errors: list[str] = []
    failed_resumes: list[int] = []

    def on_response(response) -> None:
        if response.status >= 500:
            server_errors.append(f"{response.request.method} {response.url} -> {response.status}")
            if response.url.endswith(resume_url):
                failed_resumes.append(response.status)

    page.on("response", on_response)
    resumed = page.get_by_text("Flow run resumed").first
    for attempt in range(1, SUBMIT_TRIES + 1):
        failed_before = len(failed_resumes)
        dialog.get_by_role("button", name="Submit").click()
        waited = 0
        while waited < UI_TIMEOUT_MS and not resumed.is_visible():
            if len(failed_resumes) > failed_before:
                break
            page.wait_for_timeout(250)
            waited += 250
        if resumed.is_visible():
            return
        if len(failed_resumes) == failed_before or attempt == SUBMIT_TRIES:
            break
        page.wait_for_timeout(500 * attempt)
    raise AssertionError(
        f"the UI did not resume the run after {attempt} submit(s); server errors: {server_errors}"
    )


def open_artifact_of_run(page, key: str, flow_run_id: str) -> None:
    """Artifacts → search → the key's timeline → the version this flow run created."""
    from playwright.sync_api import expect

    page.goto("/artifacts")
    page.get_by_placeholder("Search artifacts").fill(key)
    page.locator(f'a[href="/artifacts/key/{key}"]').click()
    expect(page).to_have_url(re.compile(rf"/artifacts/key/{re.escape(key)}$"))
    version = page.locator(".artifact-timeline-item-content").filter(
        has=page.locator(f'a[href="/runs/flow-run/{flow_run_id}"]')
    )
    version.locator('a[href^="/artifacts/artifact/"]').click()
    expect(page).to_have_url(re.compile(r"/artifacts/artifact/[0-9a-f-]{36}$"))


def test_reviewer_approves_in_the_prefect_ui(sandbox, rollout, screenshots):
    from tasks.approval.client import pending_approval, send_approval

    ui_url = sandbox.config.ui_url
    form_png = screenshots / "approval-form.png"

    def approve_with_browser(flow_run_id: str, key: str) -> None:
        assert key == "approval-1"
        pending = pending_approval(flow_run_id)
        try:
            with browser_page(ui_url, screenshots / "failed-approval.png") as page:
                approve_in_ui(page, flow_run_id, pending.plan_sha256, form_png)
        except BaseException as exc:
            # End the paused run now instead of at its approval timeout; the error is
            # reported through run.answer_errors.
            with suppress(Exception):
                send_approval(flow_run_id, "browser-test", approve=False, comment=repr(exc))
            raise

    run = rollout(approve_with_browser, approval_timeout_seconds=120)

    assert not run.answer_errors, run.answer_errors
    assert run.pauses == ["approval-1"]
    assert run.state.is_completed(), run.state.message
    result = run.state.result()
    assert result["applied"] == 32
    assert [a["reviewer"] for a in result["approvals"]] == [REVIEWER]
    approval = artifacts_of(run.flow_run_id)["staging-approval"]
    assert REVIEWER in approval and COMMENT in approval and result["plan_sha256"] in approval
    assert form_png.stat().st_size > 0

    from playwright.sync_api import expect

    with browser_page(ui_url, screenshots / "failed-artifacts.png") as page:
        page.goto(f"/runs/flow-run/{run.flow_run_id}")
        expect(page.get_by_text("Completed", exact=True).first).to_be_visible()

        open_artifact_of_run(page, "staging-approval", run.flow_run_id)
        expect(page.get_by_role("cell", name=REVIEWER)).to_be_visible()
        page.screenshot(path=screenshots / "approval-record.png")

        open_artifact_of_run(page, "staging-production-checklist", run.flow_run_id)
        expect(
            page.get_by_role("heading", name=re.compile("Production deployment checklist"))
        ).to_be_visible()
        expect(page.get_by_text(f"plan sha256: {result['plan_sha256']}")).to_be_visible()
        expect(page.get_by_text("Plan approved by the required reviewers").first).to_be_visible()
        # Ticked items read "— PASS: …": the UI shows **bold** inside task-list items literally.
        expect(page.get_by_text(re.compile(r"— PASS: \d+ check\(s\) passed")).first).to_be_visible()
        expect(page.get_by_text("**")).to_have_count(0)
        page.screenshot(path=screenshots / "production-checklist.png", full_page=True)
