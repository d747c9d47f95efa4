"""eth_getLogs over any block window, in chunks a public provider accepts.

Providers cap one eth_getLogs by blocks (Alchemy, QuickNode: "eth_getLogs is limited to a 10,000
range"), by results (Infura: "query returned more than 10000 results") or by response size, each
with its own words and codes. The reader learns the cap instead of being told it: per RPC URL, for
the whole process, it keeps a span (at most `RpcSettings.logs_max_span` blocks), halves it when
the provider refuses a chunk for its size, and doubles it back after a few chunks in a row pass at
the current span (a dense stretch of blocks should not cap the sparse ones after it; a doubling
that is refused makes the next one wait twice as long, so a fixed cap is rarely probed). A one-block
chunk that is still refused is a real failure: `LogsRefusedError`. Transport failures (the node
unreachable, timeouts) are not size problems: they propagate from web3's retry layer
(`chain.client.connect`).

Zama's host-listener (v0.14.0 `host-listener/src/cmd/mod.rs`) pages 100 blocks and halves its page
on any error, down to one block; it learns nothing across calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import requests
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import FilterParams, LogReceipt

#: Chunks in a row accepted at the current span before it doubles ...
GROW_AFTER = 4
#: ... at most, when the doublings before were refused.
MAX_PATIENCE = 64
#: How providers say that a chunk asked for too many blocks, results or bytes (lower case).
_REFUSALS = (
    "limit exceeded",  # -32005 (Infura, QuickNode), "block range limit exceeded" (Chainstack)
    "message too long",
    "query returned more than",  # Infura, "... 10000 results"
    "range is too",  # "block range is too wide" / "... too large"
    "range too large",
    "maximum block range",  # "exceed(s) maximum block range"
    "response size",  # Alchemy's "Log response size exceeded"
    "too many",  # "too many blocks", "too many logs"
)
#: Rate limits are no size problem: their words are removed before matching.
_RATE_LIMITS = ("too many requests", "rate limit")
#: JSON-RPC codes that only ever mean "too many blocks" (QuickNode).
_REFUSAL_CODES = (-32614,)
#: HTTP statuses that mean "this request is too large".
_REFUSAL_STATUSES = (413,)


class LogsRefusedError(RuntimeError):
    """The provider refused eth_getLogs for a single block: no smaller request exists."""


def is_size_refusal(exc: BaseException) -> bool:
    """Whether `exc` is a provider refusing an eth_getLogs for its span or its result count
    (a JSON-RPC error answer, or an HTTP error such as 413), not a transport failure."""
    if isinstance(exc, Web3RPCError):
        error = (exc.rpc_response or {}).get("error")
        code = error.get("code") if isinstance(error, dict) else None
        text = str(error if error is not None else exc).lower()
    elif isinstance(exc, requests.HTTPError) and exc.response is not None:
        if exc.response.status_code in _REFUSAL_STATUSES:
            return True
        code, text = None, exc.response.text.lower()  # some answer 4xx with a JSON-RPC error
    else:
        return False
    if code in _REFUSAL_CODES:
        return True
    # "eth_getLogs is limited to a 10,000 range", "... requests with up to a 10 block range"
    if ("limited to a" in text or "up to a" in text) and "range" in text:
        return True
    for words in _RATE_LIMITS:
        text = text.replace(words, "")
    return any(words in text for words in _REFUSALS)


@dataclass(slots=True)
class _Span:
    blocks: int
    passed: int = 0  # chunks in a row accepted at `blocks`
    patience: int = GROW_AFTER  # chunks in a row that make it double
    probing: bool = False  # `blocks` was just doubled and is not confirmed yet


_SPANS: dict[str, _Span] = {}
_LOCK = threading.Lock()


def _key(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", None) or id(w3.provider))


def current_span(w3: Web3, max_span: int) -> int:
    """The span that the next eth_getLogs chunk of `w3`'s node starts with (learnt so far)."""
    limit = max(1, max_span)
    with _LOCK:
        state = _SPANS.setdefault(_key(w3), _Span(limit))
        state.blocks = min(state.blocks, limit)
        return state.blocks


def _refused(w3: Web3, asked: int) -> None:
    """Halve; a refused doubling also doubles the patience before the next one, so a provider's
    fixed cap costs a refusal per `patience` chunks, not one per `GROW_AFTER`."""
    with _LOCK:
        state = _SPANS[_key(w3)]
        if state.probing:
            state.patience = min(state.patience * 2, MAX_PATIENCE)
        state.blocks = max(1, min(state.blocks, asked // 2))
        state.passed, state.probing = 0, False


def _accepted(w3: Web3, asked: int, max_span: int) -> None:
    limit = max(1, max_span)
    with _LOCK:
        state = _SPANS[_key(w3)]
        if asked < state.blocks:
            return  # a shorter tail says nothing about the span
        if state.probing:
            state.patience, state.probing = GROW_AFTER, False
        state.passed += 1
        if state.passed >= state.patience and state.blocks < limit:
            state.blocks, state.passed = min(limit, state.blocks * 2), 0
            state.probing = True


def get_logs_windowed(
    w3: Web3, log_filter: FilterParams, first: int, last: int, max_span: int
) -> list[LogReceipt]:
    """Every log matching `log_filter` (its `address` and `topics`; its block fields are replaced)
    in blocks first..last inclusive, in chain order, asked in chunks the provider accepts (of at
    most `max_span` blocks, the chain's `RpcSettings.logs_max_span`).

    Raises `LogsRefusedError` when a one-block chunk is refused for its size, and lets transport
    errors and other JSON-RPC errors propagate."""
    if "blockHash" in log_filter:
        raise ValueError("get_logs_windowed reads block numbers: leave blockHash out")
    out: list[LogReceipt] = []
    start = first
    while start <= last:
        asked = min(current_span(w3, max_span), last - start + 1)
        params: FilterParams = {**log_filter, "fromBlock": start, "toBlock": start + asked - 1}
        try:
            logs = w3.eth.get_logs(params)
        except (Web3RPCError, requests.HTTPError) as exc:
            if not is_size_refusal(exc):
                raise
            if asked == 1:
                raise LogsRefusedError(
                    f"the node refuses eth_getLogs even for the single block {start}: " + _said(exc)
                ) from exc
            _refused(w3, asked)
            continue
        _accepted(w3, asked, max_span)
        out.extend(logs)
        start += asked
    return out


def _said(exc: Web3RPCError | requests.HTTPError) -> str:
    """What the provider answered, without the request's URL (it may carry an API key)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.text[:200]}"
    return str(exc)
