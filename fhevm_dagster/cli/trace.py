"""`fhevm-dagster trace <handle>`: a handle's origin tree and its stages, for operators.

`--decrypt` (devnet test keys only: the key directory must hold a client key) adds each
ciphertext's plaintext next to the oracle's value over its decrypted operands, so a wrong
operation shows up as the first node where the two differ.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ..objects import ObjectStoreError, open_backend
from ..settings import Settings, load_settings
from ..store import Store, StoreTimeouts
from ..trace import TraceNode, trace
from .ciphertext import parse_handle

ERRORS: tuple[type[BaseException], ...] = (ObjectStoreError,)


def _consensus(args: argparse.Namespace, settings: Settings) -> Callable[[bytes], str]:
    from ..chain.ciphertext_commits import commit_events
    from ..chain.client import ChainReader
    from ..chain.config import gateway_from_settings

    gateway = gateway_from_settings(settings)

    def lookup(handle: bytes) -> str:
        try:
            w3 = ChainReader.of(gateway).web3
            events = commit_events(
                w3,
                gateway.ciphertext_commits_address,
                [handle],
                args.from_block,
                max_span=gateway.rpc.logs_max_span,
            )
        except Exception as exc:  # the trace still shows the rest
            return f"unknown (gateway at {gateway.rpc_url}: {exc})"
        if any(e.consensus for e in events):
            return "reached"
        return f"not yet ({len(events)} commit(s))" if events else "no commit on the gateway"

    return lookup


def _decryptor(settings: Settings) -> Callable[[bytes], int]:
    from ..resources.fhe import FheResource

    keys = FheResource.of(settings).key_set(with_client_key=True)
    assert keys.client_key is not None
    client, engine = keys.client_key, keys.engine()
    return lambda ct64: int(client.decrypt(engine.decompress(ct64)))


def _print_tree(node: TraceNode, indent: str = "") -> None:
    src = node.source
    head = f"{indent}0x{node.handle.hex()} {node.fhe_type} {node.origin}"
    if src:
        head += f" {src['operator']} block {src['block']} tx {src['tx']} log {src['log_index']}"
    print(head)
    for stage, state in node.stages.items():
        print(f"{indent}  {stage}: {state}")
    if node.plaintext is not None or node.oracle_note:
        mark = "" if node.oracle is None else (" ok" if node.oracle == node.plaintext else " DIFF")
        print(f"{indent}  plaintext: {node.plaintext}  oracle: {node.oracle}{mark}")
    for child in node.operands:
        if isinstance(child, TraceNode):
            _print_tree(child, indent + "    ")
        else:
            print(f"{indent}    {child}")


def _trace(args: argparse.Namespace) -> int:
    handle = parse_handle(args.handle)
    settings = load_settings()
    store = Store.open(
        args.database_url or settings.database_url, timeouts=StoreTimeouts.of(settings)
    )
    try:
        node = trace(
            store,
            handle,
            backend=None
            if args.no_objects
            else open_backend(
                args.object_store or settings.object_store,
                args.s3_endpoint or settings.s3_endpoint,
            ),
            consensus=None if args.no_gateway else _consensus(args, settings),
            decrypt=_decryptor(settings) if args.decrypt else None,
        )
    finally:
        store.dispose()
    if args.json:
        print(json.dumps(node.as_dict(), indent=2))
    else:
        _print_tree(node)
    return 0 if node.origin != "unknown" else 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("trace", help="a handle's origin, operands and pipeline stages")
    p.add_argument("handle", help="0x-prefixed 32-byte handle")
    p.add_argument("--database-url", default="", help="store URL (default: the configured one)")
    p.add_argument("--object-store", default="", help="file:///dir or s3://bucket")
    p.add_argument("--s3-endpoint", default="", help="S3-compatible endpoint URL")
    p.add_argument("--no-objects", action="store_true", help="skip the object store")
    p.add_argument("--no-gateway", action="store_true", help="skip the consensus lookup")
    p.add_argument("--from-block", type=int, default=0, help="first gateway block searched")
    p.add_argument(
        "--decrypt", action="store_true", help="plaintexts with the devnet's test client key"
    )
    p.add_argument("--json", action="store_true", help="print the tree as JSON")
    p.set_defaults(handler=_trace)
