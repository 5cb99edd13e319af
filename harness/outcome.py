"""What a run's exit code says, and the failure policy that decides it.

``s2s-bench run`` exits with one of:

=====  ==================================================================================================
code   meaning
=====  ==================================================================================================
0      the run is complete and every backend is within the failure policy
1      the run is complete but a backend broke the failure policy (``--max-failures``): its numbers cover too
       few utterances to be trusted; run.json and the event log hold everything measured
2      usage error: nothing was measured (bad option or backend spec, unknown data or split, a bad manifest,
       an ``--out`` that holds something else or cannot be written, a resume with other settings)
3      the run was aborted because its files could not be written (disk full, read-only): finished
       utterances are kept; ``--resume`` continues once there is room
4      the Ray executor could not finish every shard (a shard's workers kept dying, or a worker failed):
       what was measured is kept under ``OUT/shards``; ``--resume`` continues
130    interrupted by SIGINT (Ctrl-C); 128 + N for another signal N (143 for SIGTERM, 129 for SIGHUP):
       run.json says ``interrupted``, finished utterances are kept and ``--resume`` continues
=====  ==================================================================================================

The failure policy counts, per backend, the utterances whose final status is one of the *failure statuses*
(default: every status except ``ok``: ``failed``, and any other status such as ``no_answer`` or ``truncated``)
and compares the count with ``--max-failures``: a number of utterances (``3``) or a share of the backend's
utterances (``50%``). More than that, or no ``ok`` utterance at all, breaks the policy. A backend that could not
be loaded fails all its utterances, so it breaks any policy short of ``100%``.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_TOO_MANY_FAILURES = 1
EXIT_USAGE = 2
EXIT_STORAGE = 3
EXIT_SHARDS_FAILED = 4
EXIT_SIGNAL_BASE = 128

DEFAULT_MAX_FAILURES = "50%"
OK_STATUS = "ok"


def signal_exit_code(signum: int) -> int:
    """128 + the signal number, as a shell reports a process killed by that signal (130 for SIGINT)."""
    return EXIT_SIGNAL_BASE + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True)
class BackendOutcome:
    """One backend's share of a run, as the policy sees it."""

    key: str
    n: int
    by_status: dict[str, int]
    failures: int
    allowed: float
    broken: bool

    def line(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.by_status.items())) or "nothing"
        verdict = "BREAKS the failure policy" if self.broken else "within the failure policy"
        return f"{self.key}: {counts} of {self.n}: {verdict} (at most {self.allowed:g} may fail)"


@dataclass(frozen=True)
class FailurePolicy:
    """``max_failures``: an int (utterances) or a float share in [0, 1]; ``statuses``: the statuses that count as
    failures (``None``: every status except ``ok``)."""

    max_failures: int | float = 0.5
    statuses: frozenset[str] | None = None

    @classmethod
    def parse(cls, max_failures: str = DEFAULT_MAX_FAILURES, statuses: str | None = None) -> FailurePolicy:
        """From the command line: ``--max-failures 3`` or ``25%``; ``--failure-statuses failed,no_answer``."""
        text = str(max_failures).strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1]) / 100.0
                if not 0.0 <= share <= 1.0:
                    raise ValueError
                limit: int | float = share
            else:
                limit = int(text)
                if limit < 0:
                    raise ValueError
        except ValueError:
            raise ValueError(
                f"Expected --max-failures to be a count (e.g. 3) or a share between 0% and 100% (e.g. 25%) "
                f"but got {max_failures!r}"
            ) from None
        chosen = None
        if statuses:
            chosen = frozenset(s.strip() for s in statuses.split(",") if s.strip())
            if OK_STATUS in chosen:
                raise ValueError("--failure-statuses cannot count `ok` as a failure")
        return cls(limit, chosen)

    def counts_as_failure(self, status: str) -> bool:
        if status == OK_STATUS:
            return False
        return self.statuses is None or status in self.statuses

    def allowed(self, n: int) -> float:
        return self.max_failures * n if isinstance(self.max_failures, float) else float(self.max_failures)

    def judge(self, statuses: dict[str, Iterable[str]]) -> list[BackendOutcome]:
        """``statuses[backend]`` = the final status of each of its utterances; one outcome per backend."""
        out = []
        for key, values in statuses.items():
            by_status = Counter(values)
            n = sum(by_status.values())
            failures = sum(c for s, c in by_status.items() if self.counts_as_failure(s))
            allowed = self.allowed(n)
            broken = n > 0 and (failures > allowed or by_status.get(OK_STATUS, 0) == 0)
            out.append(BackendOutcome(key, n, dict(by_status), failures, allowed, broken))
        return out

    def describe(self) -> str:
        share = isinstance(self.max_failures, float)
        limit = f"{self.max_failures * 100:g}% of" if share else f"{self.max_failures} of"
        counted = "every status but ok" if self.statuses is None else ", ".join(sorted(self.statuses))
        return f"at most {limit} each backend's utterances may fail (counted: {counted})"


def final_statuses(events: list[dict], backend_keys: Iterable[str]) -> dict[str, list[str]]:
    """The final status of every finished utterance, per backend (from the event log: the last finished attempt)."""
    from .latency import final_attempts

    out: dict[str, list[str]] = {key: [] for key in backend_keys}
    for (backend, _utt), evs in final_attempts(events).items():
        end = next(e for e in evs if e.get("e") == "utt_end")
        out.setdefault(backend, []).append(str(end.get("status")))
    return out
