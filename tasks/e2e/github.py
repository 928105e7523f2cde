"""The ``github`` E2E driver: PR -> Oracle check run -> FP event + baseline, verified, cleaned up.

Against the test repository through the GitHub REST API (httpx, configurable base URL):
create a branch, commit a file, open a PR, wait (bounded polling) for the "Oracle" check
run on the head SHA, read its report (a JSON block in the check run output), verify the
FP events in the fp-events table and the baseline object in S3, then close the PR and
delete the branch, whatever happened before. The token is never logged or returned.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

from mirror_rollout.aws import AwsClients
from mirror_rollout.results import Evidence
from tasks.e2e import checks
from tasks.e2e.checks import StepResult, Verdict, failed, passed, run_steps, skipped
from tasks.e2e.oracle import baseline_bucket, describe_error, find_fp_events, verify_baseline

DEFAULT_API = "https://api.github.com"
CHECK_NAME = "Oracle"
API_VERSION = "2022-11-28"


def describe_http_error(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        request, response = exc.request, exc.response
        try:
            message = str(response.json().get("message", ""))[:200]
        except ValueError:
            message = response.text[:200]
        return f"HTTP {response.status_code} {request.method} {request.url.path}: {message}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return describe_error(exc)


def latest_run(payload: dict[str, Any], name: str = CHECK_NAME) -> dict[str, Any] | None:
    """The newest check run called ``name`` of a ``commits/{sha}/check-runs`` response."""
    runs = [r for r in payload.get("check_runs") or [] if r.get("name") == name]
    return max(runs, key=lambda r: (r.get("started_at") or "", r.get("id") or 0), default=None)


class GithubSettings(BaseModel):
    """The test repository, how to reach it and how long to wait for its Oracle check run."""

    repo: str  # owner/repo
    token: SecretStr
    api_base: str = DEFAULT_API
    timeout_seconds: float = 900.0
    poll_seconds: float = 10.0
    check_name: str = CHECK_NAME


class GithubDriver:
    def __init__(
        self,
        clients: AwsClients,
        environment: str,
        run_id: str,
        settings: GithubSettings,
        sleep: Callable[[float], None] = time.sleep,
    ):
        repo = settings.repo
        if repo.count("/") != 1:
            raise ValueError(f"github repository must be owner/repo, got {repo!r}")
        self.clients, self.environment, self.run_id = clients, environment, run_id
        self.repo = repo
        self.timeout = settings.timeout_seconds
        self.poll = settings.poll_seconds
        self.sleep = sleep
        self.check_name = settings.check_name
        self.branch = f"e2e/{run_id}"
        self.path = f"e2e/{run_id}.md"
        self._http = httpx.Client(
            base_url=settings.api_base.rstrip("/"),
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "mirror-rollout-e2e",
            },
            timeout=30.0,
        )
        self.steps: list[StepResult] = []
        self.default_branch: str | None = None
        self.branch_created = False
        self.head_sha: str | None = None
        self.pr_number: int | None = None
        self.check_run: dict[str, Any] | None = None
        self.report: dict[str, Any] | None = None
        self.fp_events: list[dict[str, Any]] = []

    # -- http --------------------------------------------------------------------------------
    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/repos/{self.repo}{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> tuple[Any, str]:
        """The answer of one repository request, and the request as evidence names it."""
        return self._api(method, path, **kwargs), f"github {method} /repos/{self.repo}{path}"

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> list[StepResult]:
        main = (
            ("create branch", self.create_branch),
            ("commit file", self.commit_file),
            ("open pull request", self.open_pull_request),
            ("wait for Oracle check run", self.wait_for_oracle),
            ("read Oracle report", self.read_report),
            ("verify FP events in fp-events table", self.verify_fp_events),
            ("verify baseline object in S3", self.verify_baseline),
        )
        cleanup = (("close pull request", self.close_pr), ("delete branch", self.delete_branch))
        try:
            self.steps.extend(run_steps(main, describe_http_error, skip_after_failure=True))
        finally:
            self.steps.extend(run_steps(cleanup, describe_http_error))
            self._http.close()
        return self.steps

    # -- steps -------------------------------------------------------------------------------
    def create_branch(self) -> Verdict:
        self.default_branch = self._api("GET", "")["default_branch"]
        base = self._api("GET", f"/git/ref/heads/{self.default_branch}")["object"]["sha"]
        ref = {"ref": f"refs/heads/{self.branch}", "sha": base}
        _, source = self._request("POST", "/git/refs", json=ref)
        self.branch_created = True
        summary = f"{self.branch} from {self.default_branch}@{base[:12]}"
        return passed(summary, f"{self.repo}:{self.branch}", source=source, base_sha=base)

    def commit_file(self) -> Verdict:
        content = f"# E2E run {self.run_id}\n\nOpened by mirror-rollout to exercise the Oracle.\n"
        body, source = self._request(
            "PUT",
            f"/contents/{self.path}",
            json={
                "message": f"test: e2e run {self.run_id}",
                "content": base64.b64encode(content.encode()).decode(),
                "branch": self.branch,
            },
        )
        self.head_sha = body["commit"]["sha"]
        summary = f"committed {self.path} as {self.head_sha[:12]}"
        return passed(summary, f"{self.repo}:{self.path}", source=source, commit=self.head_sha)

    def open_pull_request(self) -> Verdict:
        pr, source = self._request(
            "POST",
            "/pulls",
            json={
                "title": f"E2E {self.run_id}: Oracle cycle",
                "head": self.branch,
                "base": self.default_branch,
                "body": "Opened and closed automatically by the mirror-rollout E2E cycle.",
            },
        )
        self.pr_number = int(pr["number"])
        self.head_sha = pr.get("head", {}).get("sha") or self.head_sha
        return passed(
            f"PR #{self.pr_number} head {str(self.head_sha)[:12]}",
            f"{self.repo}#{self.pr_number}",
            source=source,
            number=self.pr_number,
            head_sha=self.head_sha,
            url=pr.get("html_url"),
        )

    def wait_for_oracle(self) -> Verdict:
        started = time.monotonic()
        polls = 0
        run: dict[str, Any] | None = None
        while True:
            polls += 1
            payload = self._api(
                "GET",
                f"/commits/{self.head_sha}/check-runs",
                params={"check_name": self.check_name},
            )
            run = latest_run(payload, self.check_name)
            waited = time.monotonic() - started
            if run and run.get("status") == "completed":
                break
            remaining = self.timeout - waited
            if remaining <= 0:
                break
            self.sleep(min(self.poll, remaining))
        self.check_run = run
        verdict = checks.judge_check_run(run, waited, self.timeout)
        verdict.subject = f"{self.repo}@{self.head_sha}"
        verdict.evidence.append(
            Evidence(
                source=f"github GET /repos/{self.repo}/commits/{self.head_sha}/check-runs",
                observed={
                    "polls": polls,
                    "waited_seconds": round(waited, 3),
                    "status": (run or {}).get("status"),
                    "conclusion": (run or {}).get("conclusion"),
                    "check_run_id": (run or {}).get("id"),
                    "url": (run or {}).get("html_url"),
                },
            )
        )
        return verdict

    def read_report(self) -> Verdict:
        output = (self.check_run or {}).get("output") or {}
        self.report = checks.parse_report(output.get("text"), output.get("summary"))
        if self.report is None:
            return failed("the Oracle check output holds no JSON report")
        events = checks.report_events(self.report)
        if not events:
            return failed("the Oracle report names no FP event")
        return passed(
            f"report names {len(events)} FP event(s)",
            str((self.check_run or {}).get("id", "")),
            source="github check run output",
            fpEventIds=[e["eventId"] for e in events],
            baselineKey=self.report.get("baselineKey"),
        )

    def verify_fp_events(self) -> Verdict:
        events = checks.report_events(self.report or {})
        found, missing = find_fp_events(self.clients, self.environment, events)
        self.fp_events = found
        problems = {i["eventId"]: checks.shape_problems(i) for i in found}
        problems = {k: v for k, v in problems.items() if v}
        observed: dict[str, Any] = {
            "source": f"dynamodb:Query/Scan {self.clients.region} fp-events",
            "found": sorted(i["eventId"] for i in found),
            "missing": missing,
        }
        if missing:
            return failed(f"FP event(s) not in the table: {', '.join(missing)}", **observed)
        if problems:
            text = "; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items())
            return failed(f"FP event(s) break the contract: {text}", **observed)
        return passed(f"{len(found)} FP event(s) found in contract shape", **observed)

    def verify_baseline(self) -> Verdict:
        key = (self.report or {}).get("baselineKey")
        if not key:
            return failed("the Oracle report names no baselineKey")
        return verify_baseline(self.clients, baseline_bucket(self.environment), str(key))

    def close_pr(self) -> Verdict:
        if self.pr_number is None:
            return skipped("no pull request was opened")
        pr, source = self._request("PATCH", f"/pulls/{self.pr_number}", json={"state": "closed"})
        state = (pr or {}).get("state")
        if state != "closed":
            return failed(f"PR #{self.pr_number} is {state!r} after closing")
        pr_name = f"{self.repo}#{self.pr_number}"
        return passed(f"closed PR #{self.pr_number}", pr_name, source=source, state=state)

    def delete_branch(self) -> Verdict:
        if not self.branch_created:
            return skipped("no branch was created")
        _, source = self._request("DELETE", f"/git/refs/heads/{self.branch}")
        return passed(f"deleted {self.branch}", f"{self.repo}:{self.branch}", source=source)
