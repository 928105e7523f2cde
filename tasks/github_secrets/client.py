"""Set repository Actions secrets through the GitHub REST API (httpx, configurable base URL).

GitHub only accepts values sealed to the repository's public key (libsodium sealed
box): read the key once, seal each value, PUT it with the key's id. The token and
the values never appear in a log line, a return value or an exception; errors quote
GitHub's own message (which names neither).
"""

from __future__ import annotations

import base64
import binascii

import httpx
from nacl.public import PublicKey, SealedBox
from pydantic import BaseModel, SecretStr

from mirror_rollout.errors import ConfigError, EndpointError, RolloutError
from tasks.github_secrets.plan import SecretToSet, check_repo
from tasks.github_secrets.report import TOKEN_VARIABLE, Status

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
TOKEN_FIX = (
    f"export {TOKEN_VARIABLE} with a token that may write Actions secrets of the repository "
    "(fine-grained: 'Secrets: read and write'; classic: the repo scope)"
)


class GithubRefused(RolloutError):
    """GitHub answered an error; nothing after the failing call was set."""


class RepoPublicKey(BaseModel):
    key_id: str
    key: str  # base64 of the 32-byte Curve25519 key


def seal(public_key: str, plaintext: str) -> str:
    """base64 of the libsodium sealed box of ``plaintext`` for ``public_key`` (base64)."""
    box = SealedBox(PublicKey(base64.b64decode(public_key)))
    return base64.b64encode(box.encrypt(plaintext.encode())).decode()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        return response.text[:200]


def refusal(response: httpx.Response, doing: str, repo: str, api_base: str) -> GithubRefused:
    """One error naming what GitHub refused and what to do about it."""
    code, said = response.status_code, _message(response)
    answer = f"HTTP {code}: {said}" if said else f"HTTP {code}"
    if code == 401:
        return GithubRefused(
            f"GitHub rejected the token while {doing} ({answer})",
            f"the token is wrong, expired or revoked; {TOKEN_FIX}",
        )
    if code == 403 and response.headers.get("x-ratelimit-remaining") == "0":
        return GithubRefused(
            f"GitHub's rate limit is used up ({answer})", "wait for the limit to reset, run again"
        )
    if code == 403:
        return GithubRefused(
            f"GitHub forbade {doing} with this token ({answer})",
            f"{TOKEN_FIX}; the token's owner needs admin or write access to {repo}",
        )
    if code == 404:
        # GitHub answers 404, not 403, for a private repository the token cannot see.
        return GithubRefused(
            f"repository {repo} not found at {api_base} while {doing} ({answer})",
            "check the OWNER/NAME; a private repository must be in the token's repository access",
        )
    if code in (400, 422):
        return GithubRefused(
            f"GitHub refused the request while {doing} ({answer})",
            "the repository's public key may have changed since it was read; run again",
        )
    return GithubRefused(
        f"GitHub answered {answer} while {doing}",
        "run again; if it persists check https://www.githubstatus.com",
    )


class SecretsClient:
    """Actions secrets of one repository."""

    def __init__(
        self,
        repo: str,
        token: SecretStr | None,
        api_base: str = DEFAULT_API,
        timeout_seconds: float = 30.0,
    ):
        if token is None or not token.get_secret_value().strip():
            raise ConfigError(f"no GitHub token ({TOKEN_VARIABLE} is not set)", TOKEN_FIX)
        self.repo = check_repo(repo)
        self.api_base = api_base.rstrip("/")
        self._http = httpx.Client(
            base_url=self.api_base,
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "mirror-rollout-github-secrets",
            },
            timeout=timeout_seconds,
        )

    def __enter__(self) -> SecretsClient:
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    def _call(self, method: str, path: str, doing: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(
                method, f"/repos/{self.repo}/actions/secrets{path}", **kwargs
            )
        except httpx.HTTPError as exc:
            raise EndpointError(
                f"cannot reach the GitHub API at {self.api_base} while {doing} ({type(exc).__name__})",
                "check --api-url and the network",
            ) from None
        if response.is_error:
            raise refusal(response, doing, self.repo, self.api_base)
        return response

    def public_key(self) -> RepoPublicKey:
        doing = f"reading the Actions public key of {self.repo}"
        try:
            key = RepoPublicKey.model_validate(self._call("GET", "/public-key", doing).json())
            if len(base64.b64decode(key.key, validate=True)) != 32:
                raise ValueError("not 32 bytes")
        except (ValueError, binascii.Error):  # pydantic's ValidationError is a ValueError
            raise GithubRefused(
                f"the answer to {doing} is not a key_id and a 32-byte base64 key",
                "check that --api-url is the GitHub REST API",
            ) from None
        return key

    def put(self, name: str, encrypted_value: str, key_id: str) -> Status:
        """PUT one sealed secret: ``created`` (201) or ``updated`` (204)."""
        response = self._call(
            "PUT",
            f"/{name}",
            f"setting {name} in {self.repo}",
            json={"encrypted_value": encrypted_value, "key_id": key_id},
        )
        return "created" if response.status_code == 201 else "updated"

    def set_all(self, secrets: list[SecretToSet]) -> dict[str, Status]:
        """Seal and PUT every secret with one public key; name -> created/updated.

        A refusal part way names what was already set, so the operator knows the
        repository's state without looking.
        """
        key = self.public_key()
        done: dict[str, Status] = {}
        for secret in secrets:
            try:
                done[secret.name] = self.put(
                    secret.name, seal(key.key, secret.plaintext()), key.key_id
                )
            except RolloutError as exc:
                already = ", ".join(done) if done else "nothing"
                raise type(exc)(f"{exc.problem}; already set: {already}", exc.fix) from None
        return done
