"""Parse Holoscan data-flow tracking logs into per-message records.

A log holds, per message that reached a sink, one line per path::

    (source,1795316607196973,1795316607197612) -> (scale,…,…) -> (sink,…,…)

each hop being (operator, receive µs, publish µs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HOP = re.compile(r"\(([^,()]+),(\d+),(\d+)\)")


@dataclass(frozen=True)
class Message:
    """One message's trip along one path."""

    path: str  # operator names joined by ","
    hops: tuple[tuple[str, int, int], ...]  # (operator, receive_us, publish_us)

    @property
    def start_us(self) -> int:
        return self.hops[0][1]

    @property
    def end_us(self) -> int:
        return self.hops[-1][2]

    @property
    def latency_ms(self) -> float:
        """End-to-end: sink publish − source receive."""
        return (self.end_us - self.start_us) / 1000.0

    def operator_ms(self) -> dict[str, float]:
        """Each operator's share of the end-to-end latency, in ms.

        Holoscan stamps a hop when the operator *receives* (dequeues) and *publishes* the message;
        work done before ``receive`` and time spent queued both sit between the previous hop's
        publish and this one's. So an operator's share is its publish − the upstream publish (the
        source's: publish − receive); the shares add up to the end-to-end latency exactly.
        """
        shares, previous = {}, None
        for name, rec, pub in self.hops:
            shares[name] = (pub - (rec if previous is None else previous)) / 1000.0
            previous = pub
        return shares

    def compute_ms(self) -> dict[str, float]:
        """Receive-to-publish time per operator (excludes queueing and work before ``receive``)."""
        return {name: (pub - rec) / 1000.0 for name, rec, pub in self.hops}


def parse_text(text: str) -> list[Message]:
    """Every message record in a tracking log's text, in log order.

    Raises
    ------
    ValueError
        If a path line is malformed (a hop without two integer timestamps).
    """
    messages = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if "(" not in line:
            continue
        hops = tuple((m.group(1).strip(), int(m.group(2)), int(m.group(3))) for m in _HOP.finditer(line))
        if not hops or line.count("(") != len(hops):
            raise ValueError(f"flowlog: expected hops like (op,receive_us,publish_us); got {line.strip()!r} "
                             f"at line {lineno}")
        messages.append(Message(",".join(h[0] for h in hops), hops))
    return messages


def parse_file(path: str | Path) -> list[Message]:
    """Parse one log file (see :func:`parse_text`)."""
    return parse_text(Path(path).read_text())


def by_path(messages: list[Message]) -> dict[str, list[Message]]:
    """Group messages by path, keeping order."""
    out: dict[str, list[Message]] = {}
    for m in messages:
        out.setdefault(m.path, []).append(m)
    return out


def trim(messages: list[Message], skip_first: int, discard_last: int) -> list[Message]:
    """Drop warm-up and wind-down messages (kept when too few remain to be meaningful)."""
    if len(messages) <= skip_first + discard_last:
        return messages
    return messages[skip_first: len(messages) - discard_last]
