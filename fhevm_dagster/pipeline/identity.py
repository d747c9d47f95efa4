"""A chain's identity: its id and its genesis (block 0) hash, compared with the store's record.

The sensors adopt a changed genesis only when the chain's rules accept resets (by default the
running devnet's chains, where a restart is routine): the old chain's rows are removed and the
chain is read again from its start block. The old chain's objects go first: the new chain reuses
its handles, and bytes under a handle that are not ours are an alarm the upload never overwrites
(a restart with another server key would otherwise fail every range that reuses a handle).
Elsewhere a changed genesis means the URL serves another network under the same chain id, and
everything stops with `ChainIdentityError` until an operator acts. Range steps never adopt:
they refuse a chain the store does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..settings import variable
from ..store import ChainReset
from .errors import StepError


class GenesisSource(Protocol):
    def chain_id(self) -> int: ...
    def block_hash(self, number: int) -> bytes | None: ...


class GenesisBook(Protocol):
    """What a range step's identity check needs of the store: the genesis recorded per chain."""

    def record_genesis(self, chain_id: int, genesis: bytes) -> bytes: ...


class IdentityBook(GenesisBook, Protocol):
    """What the sensors' identity check needs of the store: adopting a reset, too."""

    def ciphertext_handles_of_chain(self, chain_id: int) -> list[bytes]: ...

    def adopt_reset(
        self,
        chain_id: int,
        old: bytes,
        new: bytes,
        *,
        gateway: bool,
        removed_elsewhere: dict[str, int] | None = None,
    ) -> ChainReset | None: ...


class ChainIdentityError(RuntimeError):
    """The node's genesis is not the one the store recorded for its chain id, and resets of
    this chain are not accepted."""


@dataclass(frozen=True, slots=True)
class Identity:
    chain_id: int
    genesis: bytes
    reset: ChainReset | None = None

    def reset_message(self, what: str, start_block: int) -> str:
        assert self.reset is not None
        gone = ", ".join(f"{n} {t}" for t, n in sorted(self.reset.removed.items()) if n)
        return (
            f"{what} chain {self.chain_id} was reset: genesis {short(self.reset.old_genesis)} → "
            f"{short(self.genesis)}; starting again from block {start_block} "
            f"(rows of the old chain removed: {gone or 'none'})"
        )


def short(h: bytes) -> str:
    return f"0x{h.hex()[:12]}…"


def genesis(chain: GenesisSource) -> bytes:
    found = chain.block_hash(0)
    if found is None:
        raise RuntimeError("the node has no block 0")
    return found


def _mismatch(what: str, chain_id: int, recorded: bytes, found: bytes) -> str:
    return (
        f"{what} chain {chain_id}: the node's genesis is {short(found)}, the store's is "
        f"{short(recorded)}: the RPC URL serves another chain with the same id, or the chain was "
        "reset"
    )


def check_identity(
    chain: GenesisSource,
    store: IdentityBook,
    what: str,
    *,
    accept_reset: bool,
    gateway: bool,
    forget_objects: Callable[[list[bytes]], int] | None = None,
) -> Identity:
    """The chain's identity, recorded when first seen; a changed genesis is adopted (the old
    chain's objects removed through `forget_objects`, then its rows) when `accept_reset`, else
    `ChainIdentityError`. Objects go before the rows that name them: a crash in between leaves
    the reset to the next tick, which finds the same handles."""
    chain_id = chain.chain_id()
    found = genesis(chain)
    recorded = store.record_genesis(chain_id, found)
    if recorded == found:
        return Identity(chain_id, found)
    if not accept_reset:
        raise ChainIdentityError(
            _mismatch(what, chain_id, recorded, found)
            + ". Nothing is read until this is resolved: fix the URL, or, if the chain was "
            f"reset on purpose, set {variable('accept_chain_reset')}=1 to drop the old chain's "
            "rows and start again"
        )
    elsewhere = None
    if forget_objects is not None:
        forgotten = forget_objects(store.ciphertext_handles_of_chain(chain_id))
        elsewhere = {"object handles": forgotten}
    reset = store.adopt_reset(
        chain_id, recorded, found, gateway=gateway, removed_elsewhere=elsewhere
    )
    return Identity(chain_id, found, reset)


def require_identity(chain: GenesisSource, store: GenesisBook, what: str) -> None:
    """A range step's check: the node serves the chain the store knows (recorded if new)."""
    chain_id = chain.chain_id()
    found = genesis(chain)
    recorded = store.record_genesis(chain_id, found)
    if recorded != found:
        raise StepError(
            _mismatch(what, chain_id, recorded, found)
            + ": this range is not read; the sensor adopts a reset (or stops) on its next tick",
            retryable=False,
        )
