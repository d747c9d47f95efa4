"""Are our commits on the gateway, and do other coprocessors agree with our digests?

The gateway accepts a digest only when a majority commits the same one: a coprocessor whose bytes
differ from its peers' is outvoted on every handle, so a difference is an alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from ..chain.commit_port import CommitGateway
from ..protocol.digests import Material
from ..store import CommitState
from .ports import CommitStatusReader, DigestReader
from .range_handles import RangeHandles
from .tables import hex_str


class CommittedBook(DigestReader, CommitStatusReader, Protocol):
    """What the check of our commits needs of the store: the digests and their commit status."""


def commit_window(blocks: Sequence[int | None], lookback: int, head: int) -> tuple[int, int]:
    """The gateway blocks where commits recorded in `blocks` (None: unknown) and the commits of
    peers around them are found: from `lookback` before the first to `lookback` after the last,
    never past `head`; the last `lookback` blocks when no block is known."""
    known = [b for b in blocks if b is not None]
    if not known:
        return max(0, head - lookback), head
    return max(0, min(known) - lookback), min(head, max(known) + lookback)


def committed_problems(
    store: CommittedBook, gateway: CommitGateway, handles: RangeHandles
) -> dict[str, str]:
    """Per handle, what is wrong with its commit: absent, other digests, or not confirmed in the
    store. Commits are looked up where the store recorded them (bounded). Raises when the
    gateway cannot be read."""
    digests = store.get_digests(list(handles.stored))
    statuses = store.get_commit_statuses(list(digests))
    blocks = [s.gateway_block for s in statuses.values() if s.gateway_block is not None]
    window = (min(blocks), max(blocks)) if blocks else (None, None)
    on_chain = gateway.committed(list(digests), *window)
    unplaced = [h for h in digests if h not in on_chain]
    if unplaced and blocks:  # confirmed without a known block: the sender's look-back window
        on_chain |= gateway.committed(unplaced)
    problems: dict[str, str] = {}
    for h in handles.stored:
        d, seen, status = digests.get(h), on_chain.get(h), statuses.get(h)
        if d is None:
            problems[hex_str(h)] = "no digest stored"
        elif seen is None:
            problems[hex_str(h)] = "no AddCiphertextMaterial event from this sender"
        elif seen.material != d:
            problems[hex_str(h)] = "committed digests differ from the stored ones"
        elif status is None or status.status is not CommitState.CONFIRMED:
            problems[hex_str(h)] = f"store status {status.status if status else 'absent'}"
    return problems


@dataclass(frozen=True, slots=True)
class PeerDisagreement:
    """Another coprocessor committed other digests (or key id) than ours for a handle."""

    handle: bytes
    peer: str
    ours: Material
    theirs: Material


def peer_disagreements(
    ours: dict[bytes, Material], commits: Sequence[tuple[str, Material]], me: str
) -> list[PeerDisagreement]:
    """The (sender, material) commits of other senders that differ from `ours`, in order.

    The gateway accepts a digest only when a majority commits the same one: a coprocessor whose
    bytes differ from its peers' is outvoted on every handle, so a difference is an alarm.
    """
    out: list[PeerDisagreement] = []
    for sender, theirs in commits:
        mine = ours.get(theirs.handle)
        if sender != me and mine is not None and mine != theirs:
            out.append(PeerDisagreement(theirs.handle, sender, mine, theirs))
    return out


@dataclass(frozen=True)
class PeerReport:
    handles: int
    peers_seen: int
    with_peer_commit: int
    at_consensus: int
    disagreeing: int
    disagreements: pd.DataFrame

    def figures(self) -> dict[str, Any]:
        return {
            "handles": self.handles,
            "peers_seen": self.peers_seen,
            "handles_with_a_peer_commit": self.with_peer_commit,
            "handles_at_consensus": self.at_consensus,
            "disagreeing_handles": self.disagreeing,
        }


def peer_report(
    store: DigestReader,
    handles: RangeHandles,
    commits: Sequence[tuple[str, Material]],
    consensus: set[bytes],
    me: str,
) -> PeerReport:
    """Our stored digests against every (sender, material) commit of the range's handles."""
    ours = store.get_digests(list(handles.stored))
    bad = peer_disagreements(ours, commits, me)
    table = pd.DataFrame(
        [
            {
                "handle": hex_str(d.handle),
                "peer": d.peer,
                "our_ct64_digest": hex_str(d.ours.ciphertext_digest),
                "our_ct128_digest": hex_str(d.ours.sns_ciphertext_digest),
                "their_ct64_digest": hex_str(d.theirs.ciphertext_digest),
                "their_ct128_digest": hex_str(d.theirs.sns_ciphertext_digest),
            }
            for d in bad
        ],
        columns=["handle", "peer", "our_ct64_digest", "our_ct128_digest", "their_ct64_digest",
                 "their_ct128_digest"],
    )  # fmt: skip
    return PeerReport(
        handles=len(ours),
        peers_seen=len({s for s, _ in commits if s != me}),
        with_peer_commit=len({m.handle for s, m in commits if s != me}),
        at_consensus=len(consensus & set(ours)),
        disagreeing=len({d.handle for d in bad}),
        disagreements=table,
    )
