"""What the static and the plan guardrails share: checks with ids, observations, results.

A check is a small class registered under its id; ``inspect`` yields one
Observation per thing it looked at. An observation is ok (True), a problem
(False), or not shown by the input (None: for example a value Terraform knows
only after apply). ``run_checks`` turns them into typed CheckResults: FAIL per
problem; PASS when something was seen and nothing is wrong (the unseen parts are
named in the message and the evidence); SKIPPED, with the reason, when nothing
could be seen. A check that finds nothing to inspect fails: a guardrail never
passes on absent evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from mirror_rollout.results import CheckResult, Evidence, Severity, Status

Subject = TypeVar("Subject")
Item = TypeVar("Item")


@dataclass(frozen=True)
class Observation:
    subject: str  # resource address (or file) the observation is about
    location: str  # file:line for the static checks, the plan's address/path for plan checks
    ok: bool | None  # None: the input does not show it
    message: str


@dataclass(frozen=True)
class At:
    """A problem's file:line when it is not an argument of the observed block (a companion's)."""

    location: str


#: (argument path in the observed block or resource, or At(file:line); message)
Problem = tuple[str | At, str]


def unless(ok: bool, where: str | At, message: str) -> list[Problem]:
    """No problem when ``ok``, else the one ``message`` blamed on ``where``."""
    return [] if ok else [(where, message)]


def observations(
    subject: str,
    location: str,
    at: Callable[[str], str],
    problems: Sequence[Problem],
    ok_message: str,
) -> Iterator[Observation]:
    """One observation per (argument path, problem), blamed on that argument's location
    (``at``); one ok observation at ``location`` when there is no problem."""
    if not problems:
        yield Observation(subject, location, True, ok_message)
    for where, problem in problems:
        yield Observation(
            subject, where.location if isinstance(where, At) else at(where), False, problem
        )


class Located(Protocol):
    """A block as written or a resource as planned: an address, where it is, where its
    arguments are."""

    @property
    def address(self) -> str: ...

    @property
    def location(self) -> str: ...

    def at(self, path: str) -> str: ...


def observe(
    subject: Located, problems: Sequence[Problem], ok_message: str
) -> Iterator[Observation]:
    """The observations of one block or planned resource: ok, or one per problem."""
    return observations(subject.address, subject.location, subject.at, problems, ok_message)


def each_found(
    found: Sequence[Item], absent: Observation, judge: Callable[[Item], Iterable[Observation]]
) -> Iterator[Observation]:
    """``judge`` each of ``found``; ``absent`` (a failure) when there is none."""
    if not found:
        yield absent
    for item in found:
        yield from judge(item)


def each_expected(
    expected: Iterable[tuple[str, Item | None]],
    absent: Callable[[str], Observation],
    judge: Callable[[Item], Iterable[Observation]],
) -> Iterator[Observation]:
    """``judge`` each expected (name, item) that is there; ``absent(name)`` for the others."""
    for name, item in expected:
        if item is None:
            yield absent(name)
        else:
            yield from judge(item)


class Check(Generic[Subject]):
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity] = Severity.error
    #: What the check reads: "infra" (the .tf files as written) or "plan" (the plan JSON).
    reads: ClassVar[str]

    def inspect(self, subject: Subject) -> Iterable[Observation]:
        raise NotImplementedError


Inspect = Callable[[Any], Iterable[Observation]]


class Registry(dict[str, type[Check]]):
    """Check classes by id; ``register`` is the class decorator, ``check`` the one for a
    function that inspects."""

    def register(self, cls: type[Check]) -> type[Check]:
        if cls.id in self:
            raise ValueError(f"duplicate guardrail id {cls.id}")
        self[cls.id] = cls
        return cls

    def check(
        self, check_id: str, title: str, reads: str, severity: Severity = Severity.error
    ) -> Callable[[Inspect], Inspect]:
        """Register the decorated function as the check ``check_id`` (a Check of its own)."""

        def register(inspect: Inspect) -> Inspect:
            members = {
                "id": check_id,
                "title": title,
                "reads": reads,
                "severity": severity,
                "__doc__": inspect.__doc__,
                "inspect": lambda _self, subject: inspect(subject),
            }
            self.register(cast(type[Check], type(inspect.__name__, (Check,), members)))
            return inspect

        return register

    def reading(self, what: str) -> Registry:
        """The checks that read ``what`` ("infra" or "plan"), as a registry of their own."""
        return Registry({i: cls for i, cls in self.items() if cls.reads == what})


#: Every guardrail, static and plan, by id: the family modules register into it.
GUARDRAILS = Registry()


def run_checks(
    registry: Registry, subject: Any, only: Iterable[str] | None = None
) -> list[CheckResult]:
    """Run every check of ``registry`` (or ``only`` those ids) on ``subject``."""
    wanted = None if only is None else set(only)
    results: list[CheckResult] = []
    for check_id in sorted(registry):
        if wanted is not None and check_id not in wanted:
            continue
        cls = registry[check_id]
        observations = list(cls().inspect(subject))
        results.extend(to_results(cls, observations))
    return results


def to_results(cls: type[Check], observations: list[Observation]) -> list[CheckResult]:
    if not observations:
        observations = [Observation(cls.id, "", False, "nothing to inspect")]
    evidence = [
        Evidence(
            source=o.location,
            observed={"subject": o.subject, "ok": o.ok, "detail": o.message},
        )
        for o in observations
    ]

    def result(status: Status, subject: str, location: str, message: str) -> CheckResult:
        return CheckResult(
            check_id=cls.id,
            title=cls.title,
            status=status,
            severity=cls.severity,
            subject=subject,
            location=location,
            message=message,
            evidence=evidence,
        )

    failures = [o for o in observations if o.ok is False]
    if failures:
        return [result(Status.FAIL, f.subject, f.location, f.message) for f in failures]
    seen = [o for o in observations if o.ok]
    unseen = [o for o in observations if o.ok is None]
    notes = [f"{o.subject}: {o.message}" for o in unseen]
    if not seen:
        return [
            result(
                Status.SKIPPED,
                ", ".join(o.subject for o in unseen),
                unseen[0].location,
                "; ".join(notes)[:500],
            )
        ]
    return [
        result(
            Status.PASS,
            ", ".join(o.subject for o in seen),
            seen[0].location,
            "; ".join(_counted([o.message for o in seen]) + notes)[:500],
        )
    ]


def _counted(messages: list[str]) -> list[str]:
    """Each distinct message once, with how often it was seen ("tagged (x21)")."""
    counts: dict[str, int] = {}
    for message in messages:
        counts[message] = counts.get(message, 0) + 1
    return [m if n == 1 else f"{m} (x{n})" for m, n in counts.items()]
