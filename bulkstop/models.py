"""The data that flows through bulkstop: targets in, results out.

    Target        one build to stop: ``(job_id, build_no)``, validated.
    TargetKey     a build's identity, the one key of a target everywhere (dedupe, resume,
                  report records); :func:`key_digest` is its 128-bit digest, the same in
                  every process, for the report's index (a run's dedupe keys its own).
    InputRow      one row of the input as read: its source line and either a Target or
                  the reason it is invalid. Readers produce these; the engine consumes them.
    Reply         what one stop call answered (or how it failed), as the client saw it.
    Outcome       the final word on one input row. The whole set lives here and only here.
    Result        one report record: an InputRow's outcome and how it was reached.

Normalisation rule (documented in the README): surrounding whitespace is stripped from both
fields; ``job_id`` must then be exactly 32 characters of ``[0-9a-z]`` — uppercase is *not*
folded, because CodeArts ids are lowercase and an uppercase id is a sign of a wrong column or a
pasted value that the user should see; ``build_no`` must be an integer from 1 to
:data:`BUILD_NO_MAX` (CodeArts' build_no is an int32) given as digits (a JSON number or a string
of digits; ``"+3"``, ``"3.0"``, ``true`` are refused).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from yarl import URL

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "ACCEPTABLE",
    "BUILD_NO_MAX",
    "FINAL_FOR_RESUME",
    "RESULT_ADAPTER",
    "InputRow",
    "Outcome",
    "OutgoingRequest",
    "Reply",
    "ReplyKind",
    "Result",
    "Target",
    "TargetKey",
    "TransportFailure",
    "answered_reply",
    "key_digest",
    "new_named_tuple",
    "parse_target",
]

JOB_ID_PATTERN = re.compile(r"[0-9a-z]{32}")
_DIGITS = re.compile(r"[0-9]+")

#: The largest build number CodeArts accepts: its build_no is an int32 (1..2147483647), and the
#: service rejects a larger one, so such a row is invalid rather than sent.
BUILD_NO_MAX: Final = 2**31 - 1


class Outcome(enum.StrEnum):
    """The final word on one input row. Report files carry the lowercase value."""

    STOPPED = "stopped"  #: the service confirmed the stop (legacy ``result: true``)
    NOT_STOPPED = "not_stopped"  #: 200 but not stopped: typically the build had already ended
    UNCERTAIN = (
        "uncertain"  #: an earlier attempt may have stopped it; a retry then said "not stopped"
    )
    NOT_FOUND = "not_found"  #: 404: unknown job or build
    REJECTED = "rejected"  #: 400 other than throttling: invalid parameter or job id
    UNAUTHORIZED = "unauthorized"  #: 401: bad or expired credential
    FORBIDDEN = "forbidden"  #: 403: no permission on that job
    FAILED = "failed"  #: transient errors until attempts or deadline ran out, or a bad certificate
    INVALID = "invalid"  #: the input row itself is unusable; never sent
    DUPLICATE = "duplicate"  #: an earlier row named the same (job_id, build_no); never sent
    ABORTED = "aborted"  #: the run ended (interrupt, threshold, breaker) before this row finished
    DRY_RUN = "dry_run"  #: ``--dry-run``: a run would send it; nothing was sent
    SKIPPED = "skipped"  #: ``--only-outcome``: its earlier outcome was not chosen; not sent


#: Outcomes that count as "the run did what it could and the build is not running because of us
#: failing": exit code 0 when every row ended in one of these.
ACCEPTABLE: frozenset[Outcome] = frozenset({Outcome.STOPPED, Outcome.NOT_STOPPED})

#: Outcomes that ``--resume`` keeps as they are. ``unauthorized`` is deliberately absent: it
#: describes the credential, not the target, so a resume with a fixed credential retries it.
FINAL_FOR_RESUME: frozenset[Outcome] = frozenset(
    {
        Outcome.STOPPED,
        Outcome.NOT_STOPPED,
        Outcome.NOT_FOUND,
        Outcome.REJECTED,
        Outcome.FORBIDDEN,
        Outcome.INVALID,
        Outcome.DUPLICATE,
    }
)


class TargetKey(NamedTuple):
    """A build's identity, ``(job_id, build_no)``: the one key dedupe, resume and reports use."""

    job_id: str
    build_no: int


#: ``new_named_tuple(Cls, (every field, in order))`` makes a named tuple past its generated
#: ``__new__``, a Python-level call (with keywords, four times what the tuple costs). For the
#: tuples made once per row or request (a key, a reply, a record, a body), each beside a test
#: that holds it to the keyword form.
new_named_tuple = tuple.__new__


def key_digest(key: TargetKey) -> int:
    """The 128-bit digest of a target's key, the same in every process (the report's index).

    BLAKE2b of the job id's UTF-8 bytes followed by ``build_no`` as 8 little-endian bytes (a
    fixed-width tail, so no two keys share an input), as an unsigned integer. The same key
    gives the same digest in every process. Two distinct keys agree in any ``b`` given bits of their
    digests with probability ``2**-b``. ``build_no`` must be from 0 to ``2**64 - 1`` (a
    :class:`Target`'s always is).
    """
    data = key[0].encode() + key[1].to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "little")


@dataclass(frozen=True, slots=True)
class Target:
    """One build to stop, already normalised; a wrong value raises ``ValueError``.

    Build targets from raw input with :func:`parse_target`, which strips, converts digits and
    names the field at fault; constructing one directly takes exactly a lowercase 32-character
    ``job_id`` and an ``int`` ``build_no`` from 1 to :data:`BUILD_NO_MAX`.
    """

    job_id: str
    build_no: int

    def __post_init__(self) -> None:
        job_id, build_no = self.job_id, self.build_no
        if (
            type(job_id) is not str
            or not JOB_ID_PATTERN.fullmatch(job_id)
            or type(build_no) is not int
            or not 1 <= build_no <= BUILD_NO_MAX
        ):
            problem = parse_target(job_id, build_no)
            if not isinstance(problem, str):  # valid once stripped or converted
                problem = f"not normalised: {job_id!r}, {build_no!r} (use parse_target)"
            raise ValueError(problem)

    @property
    def key(self) -> TargetKey:
        return new_named_tuple(TargetKey, (self.job_id, self.build_no))  # one per input row


_new_target = object.__new__
_set_job_id: Callable[[Target, str], None] = vars(Target)["job_id"].__set__
_set_build_no: Callable[[Target, int], None] = vars(Target)["build_no"].__set__


def _checked_target(job_id: str, build_no: int) -> Target:
    """A :class:`Target` of values :func:`parse_target` has just checked, not checked again.

    Every valid input row makes one, and the check in ``__post_init__`` (a regular expression
    and four comparisons) was a third of its cost. The slots' own descriptors write the
    fields, as the dataclass's ``__init__`` would, past the frozen ``__setattr__``.
    """
    target: Target = _new_target(Target)
    _set_job_id(target, job_id)
    _set_build_no(target, build_no)
    return target


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_target(job_id: Any, build_no: Any) -> Target | str:
    """Validate one pair; return a :class:`Target` or a message naming the field and the problem.

    Messages read like ``job_id: must be 32 characters of [0-9a-z], got 'ABC'`` so that a reader
    can prefix them with ``file:line:``.
    """
    # Most rows are normal already: take them without the general path's stripping and
    # message building (half the cost of a row). Anything else goes the general way.
    if type(job_id) is str and JOB_ID_PATTERN.fullmatch(job_id) is not None:
        if type(build_no) is int:
            if 1 <= build_no <= BUILD_NO_MAX:
                return _checked_target(job_id, build_no)
        elif (
            type(build_no) is str
            and 0 < len(build_no) <= 10
            and build_no.isascii()
            and build_no.isdigit()
        ):
            number = int(build_no)
            if 1 <= number <= BUILD_NO_MAX:
                return _checked_target(job_id, number)
    return _parse_target(job_id, build_no)


def _parse_target(job_id: Any, build_no: Any) -> Target | str:
    """:func:`parse_target` for any values: strip, convert, or say what is wrong."""
    problems: list[str] = []
    if job_id is None or (isinstance(job_id, str) and not job_id.strip()):
        problems.append("job_id: missing")
        jid: str | None = None
    elif not isinstance(job_id, str):
        problems.append(f"job_id: must be a string, got {_describe(job_id)}")
        jid = None
    else:
        jid = job_id.strip()
        if not JOB_ID_PATTERN.fullmatch(jid):
            if len(jid) == 32 and jid.lower() != jid and JOB_ID_PATTERN.fullmatch(jid.lower()):
                problems.append(f"job_id: must be lowercase [0-9a-z], got {_describe(jid)}")
            else:
                problems.append(
                    f"job_id: must be 32 characters of [0-9a-z], got {_describe(jid)}"
                    f" ({len(jid)} characters)"
                )
    bno: int | None = None
    if build_no is None or (isinstance(build_no, str) and not build_no.strip()):
        problems.append("build_no: missing")
    elif isinstance(build_no, bool):
        problems.append(f"build_no: must be an integer ≥ 1, got {_describe(build_no)}")
    elif isinstance(build_no, int):
        bno = build_no
    elif isinstance(build_no, str) and _DIGITS.fullmatch(build_no.strip()):
        digits = build_no.strip()
        significant = digits.lstrip("0") or "0"
        if len(significant) > 18:  # spares int() a huge string; shown as a length
            problems.append(
                f"build_no: must be at most {BUILD_NO_MAX}, got a number of {len(digits)} digits"
            )
        else:
            bno = int(significant)
    else:
        problems.append(f"build_no: must be an integer ≥ 1, got {_describe(build_no)}")
    if bno is not None and bno < 1:
        problems.append(f"build_no: must be an integer ≥ 1, got {bno}")
        bno = None
    elif bno is not None and bno > BUILD_NO_MAX:
        shown = bno if bno.bit_length() <= 64 else f"a number of {bno.bit_length()} bits"
        problems.append(f"build_no: must be at most {BUILD_NO_MAX}, got {shown}")
        bno = None
    if problems or jid is None or bno is None:
        return "; ".join(problems)
    return _checked_target(jid, bno)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRow:
    """One row as read from the input: a target, or why it is not one.

    ``raw_job_id``/``raw_build_no`` hold the text as read so that an invalid row is still
    recognisable in the report.
    """

    line: int
    target: Target | None = None
    error: str | None = None
    raw_job_id: str = ""
    raw_build_no: str = ""

    @classmethod
    def from_values(cls, line: int, job_id: Any, build_no: Any) -> InputRow:
        parsed = parse_target(job_id, build_no)
        raw_job = "" if job_id is None else str(job_id)
        raw_build = "" if build_no is None else str(build_no)
        if isinstance(parsed, Target):
            if cls is InputRow:  # every valid row of an input: see _valid_row
                return _valid_row(line, parsed, raw_job, raw_build)
            return cls(
                line=line, target=parsed, error=None, raw_job_id=raw_job, raw_build_no=raw_build
            )
        return cls(line=line, target=None, error=parsed, raw_job_id=raw_job, raw_build_no=raw_build)

    @classmethod
    def invalid(cls, line: int, error: str, job_id: str = "", build_no: str = "") -> InputRow:
        return cls(line=line, target=None, error=error, raw_job_id=job_id, raw_build_no=build_no)


_new_row = object.__new__
_row_slots: tuple[Callable[[InputRow, Any], None], ...] = tuple(
    vars(InputRow)[name].__set__
    for name in ("line", "target", "error", "raw_job_id", "raw_build_no")
)


def _valid_row(line: int, target: Target, raw_job_id: str, raw_build_no: str) -> InputRow:
    """An :class:`InputRow` of a target :func:`parse_target` has just made.

    As :func:`_checked_target` makes a Target: the slots' own descriptors write the fields, as
    the frozen dataclass's ``__init__`` would, in a quarter of its time (one row per input line).
    """
    row: InputRow = _new_row(InputRow)
    set_line, set_target, set_error, set_job, set_build = _row_slots
    set_line(row, line)
    set_target(row, target)
    set_error(row, None)
    set_job(row, raw_job_id)
    set_build(row, raw_build_no)
    return row


class ReplyKind(enum.StrEnum):
    """How one stop call ended, before any policy has judged it."""

    STOPPED = "stopped"  #: 2xx and the API's success flag is true
    NOT_STOPPED = "not_stopped"  #: 2xx and the API's success flag is false
    HTTP_ERROR = "http_error"  #: a non-2xx status (error_code/error_msg parsed when present)
    BAD_BODY = "bad_body"  #: 2xx whose body could not be read as the API's answer
    TIMEOUT = "timeout"  #: no complete answer within the per-request timeout
    CONNECTION = "connection"  #: connect failure, reset, or a response cut short


class TransportFailure(enum.StrEnum):
    """Why a connection could not be made, where that says the call itself is wrong.

    Set on a :class:`Reply` of kind ``connection`` by the client, which maps aiohttp's exception
    classes to these once; any other connection failure (a reset, a cut answer) has none.
    """

    DNS = "dns"  #: the endpoint's host name does not resolve
    REFUSED = "refused"  #: nothing listens at the endpoint's address and port
    CERTIFICATE = "certificate"  #: the server's TLS certificate is not trusted (permanent)


@dataclass(slots=True, kw_only=True)
class OutgoingRequest:
    """One HTTP request before it is sent; auth adds headers (and must sign what is sent)."""

    method: str
    url: URL
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Reply(NamedTuple):
    """What one HTTP attempt produced. Made by the client; judged by the retry policy.

    A named tuple, not a pydantic model nor a frozen dataclass: it never crosses the program's
    edge and one is made per request, so it should cost next to nothing and still be immutable.
    Build it with keywords.
    """

    kind: ReplyKind
    http_status: int | None = None
    error_code: str = ""
    error_msg: str = ""
    request_id: str = ""
    #: seconds to wait from the moment the reply arrived, parsed from Retry-After when present
    retry_after: float | None = None
    #: whether the request may have reached the service (so the stop may have taken effect)
    maybe_applied: bool = False
    #: the credential generation the request was signed with (see :mod:`bulkstop.auth`)
    credential_generation: int = 0
    #: for a connection that could not be made: why, when that says the call itself is wrong
    transport_failure: TransportFailure | None = None


def answered_reply(kind: ReplyKind, http_status: int, request_id: str, generation: int) -> Reply:
    """``Reply(kind=kind, http_status=http_status, request_id=request_id,
    credential_generation=generation)``: the client's reply to each 2xx stop answer."""
    fields = (kind, http_status, "", "", request_id, None, False, generation, None)
    return new_named_tuple(Reply, fields)


class Result(NamedTuple):
    """One report record: the final word on one input row.

    Field order is the report's column order. A named tuple rather than a pydantic model:
    one is made for every input row, at thousands a second, from values the engine has
    already checked, and validating them again was a measurable part of a run's CPU. Records
    read back from a report file *are* validated, by :data:`RESULT_ADAPTER`.
    """

    line: int
    job_id: str
    build_no: str
    outcome: Outcome
    http_status: int | None = None
    error_code: str = ""
    error_msg: str = ""
    request_id: str = ""
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    elapsed_ms: int | None = None
    #: bulkstop's own explanation: why invalid, why failed, why uncertain
    detail: str = ""
    #: an attempt (of this run or an earlier one) may have stopped the build without an answer
    #: saying so: a timeout, a cut connection, a 5xx, or a call in flight at a crash. A resume
    #: then reports a "not stopped" answer for this target as ``uncertain``.
    maybe_applied: bool = False
    #: which run produced this record (1 for a first run; resumes count up)
    run: int = 1
    #: what a verification found: ``ended``, ``running`` (still running at its timeout),
    #: ``unknown`` (could not be checked); empty when the target was not verified
    verified: str = ""
    #: the service's own word for the build's state at the verification's last answer
    build_status: str = ""


if TYPE_CHECKING:
    #: Validates a record from outside (a report file): ``RESULT_ADAPTER.validate_python(dict)``.
    RESULT_ADAPTER: TypeAdapter[Result]


def __getattr__(name: str) -> Any:
    """``RESULT_ADAPTER``, built at its first use: importing pydantic and building the adapter
    cost a run that never reads a report back a good part of its start-up."""
    if name == "RESULT_ADAPTER":
        from pydantic import TypeAdapter

        adapter = globals()["RESULT_ADAPTER"] = TypeAdapter(Result)
        return adapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


REPORT_FIELDS: tuple[str, ...] = Result._fields
