"""Day 21 GitHub secrets: pure listing; the REST client against a local stand-in of the
secrets API that really decrypts the sealed boxes; the task and CLI on staging applied
to the sandbox's moto (outputs read back from the state in its S3)."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import httpx
import pytest
from nacl.public import PrivateKey, SealedBox
from pydantic import SecretStr

from mirror_rollout import contract
from mirror_rollout import sandbox as sb
from mirror_rollout.environments import terraform_dir
from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners import raw_hcl
from mirror_rollout.provisioners.raw_hcl import unquote
from mirror_rollout.provisioners.state_backend import read_backend
from tasks.github_secrets.client import GithubRefused, SecretsClient, refusal, seal
from tasks.github_secrets.plan import (
    BACKEND_SOURCE,
    SOURCES,
    STATE_BUCKET_OUTPUT,
    check_repo,
    require_values,
    secrets_for,
)
from tasks.github_secrets.report import SecretsReport, how_to_set, listed, markdown

# Imports Prefect, which configures logging: before caplog attaches its handler.
from tasks.github_secrets.task import github_secrets
from tests.applied import apply_environment
from tests.conftest import fresh_config
from tests.local_http import JsonHandler

REPO = "PhaseMirror/Phase-Mirror-Test"
TOKEN = "ghs_test_token_for_secrets"
ROLE = "arn:aws:iam::123456789012:role/mirror-dissonance-staging-github-deploy"
TOPIC = "arn:aws:sns:us-east-1:123456789012:mirror-dissonance-staging-ops-alerts"
BUCKET = "mirror-dissonance-terraform-state"
OUTPUTS = {
    "github_deploy_role_arn": ROLE,
    "sns_topic_arn": TOPIC,
    STATE_BUCKET_OUTPUT: BUCKET,
    "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/not-a-secret-to-set",
}
EXPECTED = {
    "AWS_ROLE_ARN_STAGING": ROLE,
    "OPS_SNS_TOPIC_ARN_STAGING": TOPIC,
    "TERRAFORM_STATE_BUCKET": BUCKET,
}


def assert_no_values(text: str, values) -> None:
    leaked = [v for v in values if v in text]
    assert not leaked, f"secret values in output: {leaked}"


# -- pure --------------------------------------------------------------------------------------
def test_staging_secrets_come_from_the_runbook_outputs_and_the_backend():
    secrets = secrets_for("staging", OUTPUTS, BUCKET)
    assert [(s.name, s.source) for s in secrets] == [
        ("AWS_ROLE_ARN_STAGING", "terraform output github_deploy_role_arn"),
        ("OPS_SNS_TOPIC_ARN_STAGING", "terraform output sns_topic_arn"),
        ("TERRAFORM_STATE_BUCKET", BACKEND_SOURCE),
    ]
    assert {s.name: s.plaintext() for s in secrets} == EXPECTED
    assert_no_values(repr(secrets) + str(secrets), EXPECTED.values())


def test_production_names_end_in_production_and_the_state_bucket_is_shared():
    names = [s.name for s in secrets_for("production", OUTPUTS, BUCKET)]
    assert names == [
        "AWS_ROLE_ARN_PRODUCTION",
        "OPS_SNS_TOPIC_ARN_PRODUCTION",
        "TERRAFORM_STATE_BUCKET",
    ]


def test_sources_exist_in_the_terraform_code():
    """Each output named is declared, and state_bucket_name is the backend's bucket."""
    outputs = {
        unquote(name)
        for block in raw_hcl.load(terraform_dir() / "outputs.tf").get("output", [])
        for name in block
    }
    assert {s.output for s in SOURCES if s.output} <= outputs
    assert STATE_BUCKET_OUTPUT in outputs
    assert read_backend(terraform_dir()).bucket == BUCKET
    main_tf = (terraform_dir() / "main.tf").read_text()
    assert f'state_bucket_name     = "{BUCKET}"' in main_tf


def test_missing_or_empty_outputs_block_setting_and_are_named():
    secrets = secrets_for("staging", {"github_deploy_role_arn": ROLE, "sns_topic_arn": ""}, BUCKET)
    assert [s.ready for s in secrets] == [True, False, True]
    assert [line.status for line in listed(secrets)] == ["ready", "missing", "ready"]
    with pytest.raises(ConfigError) as err:
        require_values(secrets, "staging")
    assert "OPS_SNS_TOPIC_ARN_STAGING (terraform output sns_topic_arn)" in err.value.problem
    assert "nothing was set" in err.value.problem
    assert "apply staging first" in err.value.fix
    assert_no_values(err.value.line(), [ROLE, BUCKET])
    assert how_to_set(secrets, "staging", None, False)[0].startswith("Apply staging first")


def test_backend_bucket_must_match_the_output_the_deploy_role_is_granted():
    with pytest.raises(ConfigError) as err:
        secrets_for("staging", OUTPUTS, "another-state-bucket")
    assert "state-read policy" in err.value.problem
    assert_no_values(err.value.line(), [BUCKET, "another-state-bucket"])
    # An older state without the output: the backend alone decides.
    older = {k: v for k, v in OUTPUTS.items() if k != STATE_BUCKET_OUTPUT}
    assert (
        secrets_for("staging", older, "another-state-bucket")[2].plaintext()
        == "another-state-bucket"
    )


def test_state_bucket_is_the_one_in_the_roots_backend_block(tmp_path):
    assert read_backend(terraform_dir()).bucket == BUCKET
    moved = tmp_path / "terraform"
    moved.mkdir()
    (moved / "backend.tf").write_text(
        'terraform {\n  backend "s3" {\n    bucket = "moved-state"\n    key = "k"\n  }\n}\n'
    )
    assert read_backend(moved).bucket == "moved-state"


def test_listing_says_how_to_set_without_spelling_a_value():
    secrets = secrets_for("staging", OUTPUTS, BUCKET)
    steps = how_to_set(secrets, "staging", None, False)
    assert steps[0] == (
        "To set them, export GITHUB_TOKEN (allowed to write Actions secrets of OWNER/NAME) and "
        "run `mirror-rollout github-secrets --env staging --repo OWNER/NAME`."
    )
    assert (
        "`terraform -chdir=infra/terraform output -raw state_bucket_name | gh secret set "
        "TERRAFORM_STATE_BUCKET --repo OWNER/NAME`"
    ) in steps
    with_token = how_to_set(secrets, "production", REPO, True, backend="aws")
    assert with_token[0] == (
        f"To set them, run `mirror-rollout github-secrets --env production --repo {REPO} --backend aws`."
    )
    report = SecretsReport(environment="staging", secrets=listed(secrets), next_steps=steps)
    text = markdown(report)
    assert "| `AWS_ROLE_ARN_STAGING` | terraform output github_deploy_role_arn | ready |" in text
    assert "nothing was set" in text
    assert_no_values(text + report.model_dump_json(), EXPECTED.values())


@pytest.mark.parametrize("repo", ["owner", "owner/name/extra", "/name", "own er/name", "o/"])
def test_repository_must_be_owner_slash_name(repo):
    with pytest.raises(ConfigError, match="is not OWNER/NAME"):
        check_repo(repo)
    assert check_repo("Phase-Mirror/repo.name_2") == "Phase-Mirror/repo.name_2"


def test_sealed_box_opens_with_the_private_key_only():
    key = PrivateKey.generate()
    sealed = seal(base64.b64encode(bytes(key.public_key)).decode(), ROLE)
    assert SealedBox(key).decrypt(base64.b64decode(sealed)).decode() == ROLE
    assert ROLE not in sealed


@pytest.mark.parametrize(
    ("code", "headers", "words"),
    [
        (401, {}, ["rejected the token", "expired or revoked"]),
        (403, {}, ["forbade reading the key", "Secrets: read and write"]),
        (403, {"x-ratelimit-remaining": "0"}, ["rate limit", "wait"]),
        (404, {}, ["not found", "token's repository access"]),
        (422, {}, ["refused", "public key may have changed"]),
        (502, {}, ["HTTP 502", "githubstatus"]),
    ],
)
def test_each_refusal_names_problem_and_fix(code, headers, words):
    request = httpx.Request("GET", "https://api.github.com/repos/o/r/actions/secrets/public-key")
    response = httpx.Response(code, json={"message": "nope"}, headers=headers, request=request)
    line = refusal(response, "reading the key", "o/r", "https://api.github.com").line()
    assert all(w in line for w in words), line
    assert "nope" in line and " — " in line


# -- the REST client against a local stand-in of GitHub's secrets API --------------------------
class SecretsApi:
    """Repository Actions secrets as GitHub serves them, decrypting what it receives.

    ``rotate_after_get``: the key changes right after it is served (a stale key_id);
    ``fail_put``: secret name -> HTTP status to answer its PUT with.
    """

    def __init__(self, token: str = TOKEN, repo: str = REPO):
        self.token, self.repo = token, repo
        self.private_key = PrivateKey.generate()
        self.key_id = "568250167242549743"
        self.rotate_after_get = False
        self.fail_put: dict[str, int] = {}
        self.secrets: dict[str, str] = {}  # name -> decrypted value
        self.calls: list[tuple[str, str]] = []
        api = self

        class Handler(JsonHandler):
            def _handle(self):
                path, body = self._request()
                api.calls.append((self.command, path))
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._reply(401, {"message": "Bad credentials"})
                if self.headers.get("X-GitHub-Api-Version") != "2022-11-28" or (
                    self.headers.get("Accept") != "application/vnd.github+json"
                ):
                    return self._reply(400, {"message": "missing API headers"})
                return self._reply(*api.route(self.command, path, body))

            do_GET = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, body: dict):
        prefix = f"/repos/{self.repo}/actions/secrets"
        if not path.startswith(prefix + "/"):
            return 404, {"message": "Not Found"}
        name = path.removeprefix(prefix + "/")
        if method == "GET" and name == "public-key":
            served = {
                "key_id": self.key_id,
                "key": base64.b64encode(bytes(self.private_key.public_key)).decode(),
            }
            if self.rotate_after_get:
                self.private_key, self.key_id = PrivateKey.generate(), "999"
            return 200, served
        if method == "PUT":
            if name in self.fail_put:
                return self.fail_put[name], {"message": "Resource not accessible by integration"}
            if body.get("key_id") != self.key_id:
                return 422, {"message": "Bad request: key_id does not match the repository key"}
            sealed = base64.b64decode(body["encrypted_value"])
            existed = name in self.secrets
            self.secrets[name] = SealedBox(self.private_key).decrypt(sealed).decode()
            return (204, None) if existed else (201, {})
        return 404, {"message": "Not Found"}

    @property
    def puts(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.calls if method == "PUT"]


@pytest.fixture
def github():
    api = SecretsApi()
    yield api
    api.close()


def client(api: SecretsApi, token: str = TOKEN, repo: str = REPO) -> SecretsClient:
    return SecretsClient(repo, SecretStr(token), api_base=api.url)


def test_sets_every_secret_sealed_to_the_repository_key(github):
    secrets = secrets_for("staging", OUTPUTS, BUCKET)
    with client(github) as gh:
        assert gh.set_all(secrets) == dict.fromkeys(EXPECTED, "created")
        assert github.secrets == EXPECTED
        assert gh.set_all(secrets) == dict.fromkeys(EXPECTED, "updated")  # idempotent rerun
    assert [c for c in github.calls if c[0] == "GET"] == [
        ("GET", f"/repos/{REPO}/actions/secrets/public-key")
    ] * 2


def test_bad_token_sets_nothing(github):
    with client(github, token="ghs_revoked") as gh, pytest.raises(GithubRefused) as err:
        gh.set_all(secrets_for("staging", OUTPUTS, BUCKET))
    assert err.value.problem.startswith(
        "GitHub rejected the token while reading the Actions public key"
    )
    assert "HTTP 401: Bad credentials" in err.value.problem and "GITHUB_TOKEN" in err.value.fix
    assert github.puts == [] and github.secrets == {}
    assert "ghs_revoked" not in err.value.line()


def test_stale_key_id_is_refused_and_nothing_is_set(github):
    github.rotate_after_get = True
    with client(github) as gh, pytest.raises(GithubRefused) as err:
        gh.set_all(secrets_for("staging", OUTPUTS, BUCKET))
    assert "HTTP 422" in err.value.problem and "already set: nothing" in err.value.problem
    assert "public key may have changed" in err.value.fix
    assert github.secrets == {}


def test_unknown_repository_is_a_clear_404(github):
    with client(github, repo="PhaseMirror/typo") as gh, pytest.raises(GithubRefused) as err:
        gh.set_all(secrets_for("staging", OUTPUTS, BUCKET))
    assert "repository PhaseMirror/typo not found" in err.value.problem


def test_refusal_part_way_names_what_was_already_set(github):
    github.fail_put["OPS_SNS_TOPIC_ARN_STAGING"] = 403
    with client(github) as gh, pytest.raises(GithubRefused) as err:
        gh.set_all(secrets_for("staging", OUTPUTS, BUCKET))
    assert err.value.problem.startswith("GitHub forbade setting OPS_SNS_TOPIC_ARN_STAGING in")
    assert "already set: AWS_ROLE_ARN_STAGING" in err.value.problem
    assert github.secrets == {"AWS_ROLE_ARN_STAGING": ROLE}
    assert_no_values(err.value.line(), EXPECTED.values())


@pytest.mark.parametrize("token", [None, SecretStr(""), SecretStr("  ")])
def test_missing_token_is_refused_before_any_call(token):
    with pytest.raises(ConfigError) as err:
        SecretsClient(REPO, token)
    assert "GITHUB_TOKEN is not set" in err.value.problem and "export GITHUB_TOKEN" in err.value.fix


def test_unreachable_api_is_an_endpoint_error():
    gh = SecretsClient(REPO, SecretStr(TOKEN), api_base="http://127.0.0.1:9")
    with gh, pytest.raises(RolloutError) as err:
        gh.public_key()
    assert "cannot reach the GitHub API at http://127.0.0.1:9" in err.value.problem


# -- the task and the CLI on staging applied to the sandbox's moto ----------------------------
@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """Only the sandbox's moto server, on a free port: the state lives in its S3.

    No Prefect server: the task is called with ``.fn`` outside a run, where it publishes
    no artifact, and starting one would cost most of this file's time.
    """
    config = fresh_config(tmp_path_factory.mktemp("moto"))
    server = subprocess.Popen(
        sb.server_command(config, "moto"),
        env=sb.server_env(config, "moto", os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not sb.healthy(config, "moto"):
            assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
        with pytest.MonkeyPatch.context() as env:
            for key in sb.CONFLICTING_ENV:
                env.delenv(key, raising=False)
            for key, value in sb.exports(config).items():
                if key.startswith("AWS_"):
                    env.setenv(key, value)
            yield config
    finally:
        server.kill()  # in-memory: nothing to flush
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def staging(moto, tmp_path_factory):
    """Staging applied by the sandbox engine: the expected secret values, from its apply."""

    applied = apply_environment("staging", tmp_path_factory.mktemp("secrets-plan"))
    return {
        "AWS_ROLE_ARN_STAGING": applied.outputs["github_deploy_role_arn"],
        "OPS_SNS_TOPIC_ARN_STAGING": applied.outputs["sns_topic_arn"],
        "TERRAFORM_STATE_BUCKET": contract.STATE_BUCKET,
    }


@pytest.fixture
def settings(staging):
    from mirror_rollout.settings import parse_settings

    return parse_settings(environment="staging", backend="sandbox")


def test_task_sets_the_values_read_from_the_state(staging, settings, github, monkeypatch, caplog):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    report = github_secrets.fn(settings, REPO, github.url)
    assert github.secrets == staging
    assert staging["AWS_ROLE_ARN_STAGING"].endswith(":role/mirror-dissonance-staging-github-deploy")
    assert report.applied and [s.status for s in report.secrets] == ["created"] * 3
    assert "AWS_ROLE_ARN_STAGING ← terraform output github_deploy_role_arn: created" in caplog.text
    # The AWS SDK's own DEBUG lines name the state bucket when they read the state from it.
    logs = [
        r.getMessage() for r in caplog.records if not r.name.startswith(("botocore", "urllib3"))
    ]
    seen = report.model_dump_json() + markdown(report) + "\n".join(logs)
    assert_no_values(seen, [*staging.values(), TOKEN])


def test_task_without_token_lists_and_with_repository_fails_clearly(
    staging, settings, github, monkeypatch
):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    report = github_secrets.fn(settings)
    assert not report.applied and [s.status for s in report.secrets] == ["ready"] * 3
    with pytest.raises(ConfigError, match="GITHUB_TOKEN is not set; nothing was set"):
        github_secrets.fn(settings, REPO, github.url)
    assert github.calls == []


def test_cli_lists_and_sets_without_printing_a_value(staging, github, monkeypatch):
    from typer.testing import CliRunner

    from console.main import app

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    runner = CliRunner()
    listing = runner.invoke(app, ["github-secrets", "--env", "staging"])
    assert listing.exit_code == 0, listing.output
    assert "AWS_ROLE_ARN_STAGING" in listing.output and "export GITHUB_TOKEN" in listing.output

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    setting = runner.invoke(
        app, ["github-secrets", "--env", "staging", "--repo", REPO, "--api-url", github.url]
    )
    assert setting.exit_code == 0, setting.output
    assert "created" in setting.output and github.secrets == staging
    assert_no_values(listing.output + setting.output, [*staging.values(), TOKEN])


def test_unapplied_environment_lists_what_is_missing_and_sets_nothing(moto, github, monkeypatch):
    from mirror_rollout.settings import parse_settings

    production = parse_settings(environment="production", backend="sandbox")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    listing = github_secrets.fn(production)
    assert [(s.name, s.status) for s in listing.secrets] == [
        ("AWS_ROLE_ARN_PRODUCTION", "missing"),
        ("OPS_SNS_TOPIC_ARN_PRODUCTION", "missing"),
        ("TERRAFORM_STATE_BUCKET", "ready"),
    ]
    assert listing.next_steps[0].startswith("Apply production first")

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with pytest.raises(ConfigError) as err:
        github_secrets.fn(production, REPO, github.url)
    assert err.value.problem.startswith("not in the production state: AWS_ROLE_ARN_PRODUCTION")
    assert github.calls == []
