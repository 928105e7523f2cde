"""A fault-injection proxy between the rollout and the sandbox's moto.

A small threaded HTTP reverse proxy on 127.0.0.1: point ``AWS_ENDPOINT_URL`` at
it and every AWS call of the pipeline passes through it to moto unchanged, until
it is told to misbehave for the next N requests of one service (optionally one
operation)::

    refuse    close the connection without any response
    stall     hold the request (default 60 s, beyond botocore's 30 s read timeout), then close
    drop      forward the request to moto (it takes effect), then close without the response
    error     an HTTP 500 InternalFailure (InternalError for S3, InternalServerError for
              DynamoDB) in the service's wire shape; ``code``/``status`` give any other error
    throttle  the service's throttling error in its wire shape: ThrottlingException (JSON
              protocols: SSM, KMS, SQS, Logs, CloudWatch, ...; 429 for REST-JSON),
              ProvisionedThroughputExceededException (DynamoDB data plane), Throttling
              (query protocol: SNS, IAM, STS; CloudWatch over rpc-v2-cbor), SlowDown 503 (S3)

``count`` null means until cleared; ``after`` lets that many matching requests through first.

The service is the SigV4 signing name (``Credential=…/<region>/<service>/aws4_request``:
``dynamodb``, ``ssm``, ``kms``, ``sqs``, ``sns``, ``monitoring`` for CloudWatch, ``s3``,
``sts``, ``iam``, ``logs``…); the operation comes from ``X-Amz-Target``, the query
``Action`` or the CBOR path (S3 requests have no operation name here). Unsigned requests
(moto's own ``/moto-api``) always pass.

Control it over HTTP on the proxy itself (``/__faults__``) or, in Python, through
:class:`FaultProxy`::

    curl -X POST $PROXY/__faults__ -d '{"service": "dynamodb", "fault": "throttle", "count": 3}'
    curl $PROXY/__faults__            # rules, faults injected so far, requests seen
    curl -X DELETE $PROXY/__faults__  # clear every rule (a stalled request is released)

From a shell: ``python -m tests.fault_proxy serve --upstream URL`` and
``python -m tests.fault_proxy inject dynamodb throttle --count 3``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import typer

from mirror_rollout.errors import ConfigError

CONTROL_PATH = "/__faults__"
FAULTS = ("refuse", "stall", "drop", "error", "throttle")
DEFAULT_STALL_SECONDS = 60.0
#: Where ``inject``/``clear``/``status`` find the proxy when --proxy is not given.
PROXY_ENV = "MIRROR_ROLLOUT_FAULT_PROXY"
#: DynamoDB operations whose throttling is ProvisionedThroughputExceededException.
DYNAMODB_DATA_PLANE = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"^/service/[^/]+/operation/([^/?]+)")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
MAX_LOG = 1000


# ----------------------------------------------------------------------------
# Rules (pure)
# ----------------------------------------------------------------------------


@dataclass
class FaultRule:
    """Misbehave for the next ``count`` requests of ``service`` (and ``operation``, if given).

    ``count`` None means until cleared; ``after`` lets that many matching requests
    through first. ``code``/``status``/``message`` override the error response.
    """

    service: str
    fault: str
    count: int | None = 1
    operation: str | None = None
    after: int = 0
    stall_seconds: float = DEFAULT_STALL_SECONDS
    code: str | None = None
    status: int | None = None
    message: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    seen: int = 0  # matching requests so far (including those let through by ``after``)
    injected: int = 0  # faults injected so far

    @classmethod
    def parse(cls, data: Any) -> FaultRule:
        """A rule from the control API's JSON; ConfigError naming what is wrong."""
        if not isinstance(data, dict):
            raise ConfigError(f"a fault rule is a JSON object, got {data!r}")
        known = {"service", "fault", "count", "operation", "after", "stall_seconds"}
        known |= {"code", "status", "message"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown fault rule field(s) {', '.join(unknown)}",
                f"use {', '.join(sorted(known))}",
            )
        service = str(data.get("service") or "").strip().lower()
        fault = str(data.get("fault") or "").strip().lower()
        if not service:
            raise ConfigError(
                "a fault rule needs a service",
                "give the SigV4 signing name (dynamodb, ssm, sqs, monitoring, s3, ...) or *",
            )
        if fault not in FAULTS:
            raise ConfigError(f"unknown fault {fault!r}", f"use one of {', '.join(FAULTS)}")
        count = data.get("count", 1)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ConfigError(f"count must be 1 or more (or null: until cleared), got {count!r}")
        after = data.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ConfigError(f"after must be 0 or more, got {after!r}")
        stall = data.get("stall_seconds", DEFAULT_STALL_SECONDS)
        if isinstance(stall, bool) or not isinstance(stall, int | float) or stall < 0:
            raise ConfigError(f"stall_seconds must be 0 or more, got {stall!r}")
        status = data.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ConfigError(f"status must be an HTTP error status (400-599), got {status!r}")
        return cls(
            service=service,
            fault=fault,
            count=count,
            operation=(str(data["operation"]) if data.get("operation") else None),
            after=after,
            stall_seconds=float(stall),
            code=data.get("code") or None,
            status=status,
            message=data.get("message") or None,
        )

    @property
    def active(self) -> bool:
        return self.count is None or self.injected < self.count

    def matches(self, service: str | None, operation: str | None) -> bool:
        if service is None:
            return False
        if self.service not in ("*", service):
            return False
        return self.operation is None or (operation or "").lower() == self.operation.lower()

    def describe(self) -> str:
        what = self.service + (f".{self.operation}" if self.operation else "")
        times = "until cleared" if self.count is None else f"x{self.count}"
        skip = f" after {self.after}" if self.after else ""
        return f"{self.fault} {what} {times}{skip}"


@dataclass(frozen=True)
class AwsRequest:
    """What the proxy knows about one request."""

    method: str
    path: str
    service: str | None
    operation: str | None
    protocol: str  # json, cbor, query, s3, rest-json, none
    content_type: str


def identify(method: str, path: str, headers: Any, body: bytes) -> AwsRequest:
    """Service (SigV4 signing name), operation and wire protocol of a request (pure)."""
    match = _CREDENTIAL.search(headers.get("Authorization") or "")
    query = parse_qs(urlsplit(path).query)
    if match is None and "X-Amz-Credential" in query:  # presigned URL
        match = _CREDENTIAL.search("Credential=" + query["X-Amz-Credential"][0])
    service = match.group(1).lower() if match else None
    content_type = headers.get("Content-Type") or ""
    target = headers.get("X-Amz-Target")
    operation = None
    if (headers.get("smithy-protocol") or "").lower() == "rpc-v2-cbor":
        protocol = "cbor"
        found = _CBOR_PATH.match(urlsplit(path).path)
        operation = found.group(1) if found else None
    elif target:
        protocol, operation = "json", target.rsplit(".", 1)[-1]
    elif service == "s3":
        protocol = "s3"
    elif service is not None and "x-www-form-urlencoded" in content_type:
        protocol = "query"
        form = parse_qs(body.decode("utf-8", "replace")) if body else {}
        operation = (form.get("Action") or query.get("Action") or [None])[0]
    elif service is not None:
        protocol = "rest-json"
    else:
        protocol = "none"
    return AwsRequest(method, path, service, operation, protocol, content_type)


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    if n < 24:
        head = bytes([0x60 | n])
    elif n < 256:
        head = bytes([0x78, n])
    else:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    return head + data


def cbor_map(values: dict[str, str]) -> bytes:
    """A CBOR map of short text keys to text values (all an rpc-v2-cbor error needs)."""
    out = bytes([0xA0 | len(values)])
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


@dataclass(frozen=True)
class ErrorResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _error_code(request: AwsRequest, rule: FaultRule) -> tuple[str, int, str]:
    """(code, HTTP status, message) the service itself answers a throttle or a 500 with."""
    protocol = request.protocol
    if rule.fault == "throttle":
        if protocol == "s3":
            code, status = "SlowDown", 503
        elif protocol in ("query", "cbor"):
            code, status = "Throttling", 400
        elif request.service == "dynamodb" and request.operation in DYNAMODB_DATA_PLANE:
            code, status = "ProvisionedThroughputExceededException", 400
        elif protocol == "rest-json":
            code, status = "ThrottlingException", 429
        else:
            code, status = "ThrottlingException", 400
        message = {
            "SlowDown": "Please reduce your request rate.",
            "ProvisionedThroughputExceededException": "The level of configured provisioned "
            "throughput for the table was exceeded. (injected by the fault proxy)",
        }.get(code, "Rate exceeded")
    else:
        code = "InternalError" if protocol == "s3" else "InternalFailure"
        if request.service == "dynamodb":
            code = "InternalServerError"
        status = 500
        message = "We encountered an internal error. Please try again."
    if rule.code and rule.code != code:
        code, message = rule.code, f"{rule.code}"
    return code, rule.status or status, rule.message or f"{message} (injected by the fault proxy)"


def error_response(request: AwsRequest, rule: FaultRule) -> ErrorResponse:
    """The throttle/500 answer of ``rule`` in the wire shape of ``request``'s protocol (pure)."""
    code, status, message = _error_code(request, rule)
    request_id = str(uuid.uuid4())
    protocol = request.protocol
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id}
    if protocol == "s3":
        headers["Content-Type"] = "application/xml"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{_xml(message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
        ).encode()
        if request.method == "HEAD":
            body = b""
    elif protocol == "query":
        kind = "Sender" if status < 500 else "Receiver"
        headers["Content-Type"] = "text/xml"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
            f"<Message>{_xml(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    elif protocol == "cbor":
        headers |= {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
        body = cbor_map({"__type": code, "message": message})
    else:
        headers |= {
            "Content-Type": request.content_type
            if protocol == "json" and request.content_type
            else "application/json",
            "x-amzn-ErrorType": code,
        }
        prefix = f"com.amazonaws.{request.service}#" if protocol == "json" else ""
        body = json.dumps({"__type": prefix + code, "message": message}).encode()
    return ErrorResponse(status, headers, body)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ----------------------------------------------------------------------------
# The proxy
# ----------------------------------------------------------------------------


class FaultProxy:
    """The proxy in a background thread; use as a context manager or start()/stop()."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(
                f"upstream {upstream!r} is not an http:// URL",
                "give moto's URL, e.g. http://127.0.0.1:5055",
            )
        self.upstream = upstream.rstrip("/")
        self._upstream_addr = (parts.hostname, parts.port or 80)
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._injected: list[dict[str, Any]] = []
        self._requests: Counter[str] = Counter()
        self._release = threading.Event()  # set: stalled requests give up waiting
        self._server = _Server((host, port), _Handler)
        self._server.proxy = self
        if self._upstream_addr == self._server.server_address[:2]:
            self._server.server_close()
            raise ConfigError(
                f"the proxy would forward to itself ({upstream})",
                "give moto's URL as the upstream, not the proxy's",
            )
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- rules ------------------------------------------------------------------------
    def inject(self, service: str, fault: str, count: int | None = 1, **options: Any) -> FaultRule:
        """Add a rule (see :class:`FaultRule`); returns it (its counters update live)."""
        return self.add(
            FaultRule.parse({"service": service, "fault": fault, "count": count, **options})
        )

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
            self._release.clear()
        return rule

    def clear(self) -> None:
        """Remove every rule and release stalled requests; the log of injected faults stays."""
        with self._lock:
            self._rules.clear()
            self._release.set()

    @contextlib.contextmanager
    def fault(
        self, service: str, fault: str, count: int | None = 1, **options: Any
    ) -> Iterator[FaultRule]:
        """A rule for the duration of the block."""
        rule = self.inject(service, fault, count, **options)
        try:
            yield rule
        finally:
            with self._lock:
                if rule in self._rules:
                    self._rules.remove(rule)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    @property
    def injected(self) -> list[dict[str, Any]]:
        """Every fault injected so far: service, operation, fault, rule id, time."""
        with self._lock:
            return list(self._injected)

    @property
    def requests(self) -> Counter[str]:
        """Requests seen per ``service.Operation`` (``service`` for S3), faulted or not."""
        with self._lock:
            return Counter(self._requests)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "upstream": self.upstream,
                "rules": [asdict(r) | {"active": r.active} for r in self._rules],
                "injected": list(self._injected),
                "requests": dict(self._requests),
            }

    def _decide(self, request: AwsRequest) -> FaultRule | None:
        with self._lock:
            if request.service is not None:
                key = request.service + (f".{request.operation}" if request.operation else "")
                self._requests[key] += 1
            for rule in self._rules:
                if not rule.active or not rule.matches(request.service, request.operation):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.injected += 1
                self._injected.append(
                    {
                        "service": request.service,
                        "operation": request.operation,
                        "fault": rule.fault,
                        "rule": rule.id,
                        "at": time.time(),
                    }
                )
                del self._injected[:-MAX_LOG]
                return rule
        return None

    def _stall(self, seconds: float) -> None:
        self._release.wait(seconds)

    def _forward(
        self, handler: _Handler, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self._upstream_addr, timeout=120)
        try:
            conn.putrequest(
                handler.command, handler.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in handler.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            if body or handler.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (timeouts, hang-ups) is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        headers: dict[str, str] | list[tuple[str, str]],
        body: bytes,
        bodiless: bool = False,
    ) -> None:
        """One response; ``bodiless`` (HEAD, 204, 304) keeps the upstream Content-Length."""
        self.send_response(status)
        length = None
        for name, value in headers.items() if isinstance(headers, dict) else headers:
            lowered = name.lower()
            if lowered == "content-length":
                length = value
            elif lowered not in _HOP_BY_HOP and lowered not in ("server", "date"):
                self.send_header(name, value)
        if bodiless:
            self.send_header("Content-Length", length if length is not None else "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hang_up(self) -> None:
        """End the connection without a response (the client sees it closed)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _control(self, body: bytes) -> None:
        proxy = self.server.proxy
        try:
            if self.command == "GET":
                status, answer = 200, proxy.status()
            elif self.command == "DELETE":
                proxy.clear()
                status, answer = 200, proxy.status()
            elif self.command == "POST":
                data = json.loads(body or b"{}")
                items = data.get("rules", [data]) if isinstance(data, dict) else data
                rules = [FaultRule.parse(item) for item in items]
                for rule in rules:
                    proxy.add(rule)
                status, answer = 201, {"rules": [asdict(r) for r in rules]}
            else:
                status, answer = (
                    405,
                    {"error": f"{self.command} is not supported on {CONTROL_PATH}"},
                )
        except (ConfigError, ValueError) as exc:
            status, answer = 400, {"error": str(exc)}
        self._send(status, {"Content-Type": "application/json"}, json.dumps(answer).encode())

    def _handle(self) -> None:
        body = self._read_body()
        if urlsplit(self.path).path.rstrip("/") == CONTROL_PATH:
            self._control(body)
            return
        proxy = self.server.proxy
        request = identify(self.command, self.path, self.headers, body)
        rule = proxy._decide(request)
        head = self.command == "HEAD"
        if rule is not None and rule.fault == "refuse":
            self._hang_up()
            return
        if rule is not None and rule.fault == "stall":
            proxy._stall(rule.stall_seconds)
            self._hang_up()
            return
        if rule is not None and rule.fault in ("throttle", "error"):
            answer = error_response(request, rule)
            self._send(answer.status, answer.headers, answer.body, bodiless=head)
            return
        try:
            status, _reason, headers, data = proxy._forward(self, body)
        except OSError as exc:
            message = f"fault proxy: upstream {proxy.upstream} unreachable: {exc}".encode()
            self._send(502, {"Content-Type": "text/plain"}, message)
            return
        if rule is not None:  # drop: the request took effect, its response is lost
            self._hang_up()
            return
        self._send(status, headers, data, bodiless=head or status in (204, 304))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


# ----------------------------------------------------------------------------
# CLI: python -m tests.fault_proxy
# ----------------------------------------------------------------------------

app = typer.Typer(
    name="sandbox-faults",
    help="A fault-injection proxy in front of the sandbox's moto.",
    no_args_is_help=True,
    add_completion=False,
)

ProxyOpt = Annotated[
    str | None,
    typer.Option("--proxy", help=f"The proxy's URL [env {PROXY_ENV}, else AWS_ENDPOINT_URL]"),
]


def _proxy_url(proxy: str | None) -> str:
    url = proxy or os.environ.get(PROXY_ENV) or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        raise typer.BadParameter(f"give --proxy or set {PROXY_ENV}")
    return url.rstrip("/")


def _call(method: str, url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    response = httpx.request(method, url + CONTROL_PATH, json=payload, timeout=10, trust_env=False)
    data = response.json()
    if response.status_code >= 400:
        typer.echo(data.get("error", response.text), err=True)
        raise typer.Exit(2)
    return data


@app.command("serve")
def serve_cmd(
    upstream: Annotated[
        str | None, typer.Option("--upstream", help="moto's URL [default: AWS_ENDPOINT_URL]")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free one)")] = 5056,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
) -> None:
    """Run the proxy in the foreground; prints the export line for clients."""
    target = upstream or os.environ.get("AWS_ENDPOINT_URL")
    if not target:
        raise typer.BadParameter("give --upstream (moto's URL) or set AWS_ENDPOINT_URL")
    proxy = FaultProxy(target, host, port).start()
    typer.echo(f"export AWS_ENDPOINT_URL={proxy.url} {PROXY_ENV}={proxy.url}")
    typer.echo(f"# forwarding to {proxy.upstream}; control: {proxy.url}{CONTROL_PATH}", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()


@app.command("inject")
def inject_cmd(
    service: Annotated[str, typer.Argument(help="SigV4 signing name (dynamodb, ssm, s3...) or *")],
    fault: Annotated[str, typer.Argument(help=" | ".join(FAULTS))],
    count: Annotated[int, typer.Option("--count", help="How many requests (0: until cleared)")] = 1,
    operation: Annotated[str | None, typer.Option("--operation", help="e.g. PutItem")] = None,
    after: Annotated[int, typer.Option("--after", help="Let this many through first")] = 0,
    stall_seconds: Annotated[float, typer.Option("--stall-seconds")] = DEFAULT_STALL_SECONDS,
    proxy: ProxyOpt = None,
) -> None:
    """Make the proxy misbehave for the next COUNT requests of SERVICE."""
    rule = {
        "service": service,
        "fault": fault,
        "count": count or None,
        "operation": operation,
        "after": after,
        "stall_seconds": stall_seconds,
    }
    added = _call("POST", _proxy_url(proxy), rule)["rules"][0]
    typer.echo(f"rule {added['id']}: {FaultRule.parse({k: added[k] for k in rule}).describe()}")


@app.command("clear")
def clear_cmd(proxy: ProxyOpt = None) -> None:
    """Remove every rule."""
    _call("DELETE", _proxy_url(proxy))
    typer.echo("no fault rules")


@app.command("status")
def status_cmd(proxy: ProxyOpt = None) -> None:
    """Rules, faults injected and requests seen, as JSON."""
    typer.echo(json.dumps(_call("GET", _proxy_url(proxy)), indent=2))


__all__ = ["FAULTS", "FaultProxy", "FaultRule", "error_response", "identify"]

if __name__ == "__main__":  # pragma: no cover
    app()
