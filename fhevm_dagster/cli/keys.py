"""`fhevm-dagster keys generate|show`: key sets for a new deployment, written outside the repo."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..compute.keys import METADATA, KeySetError, cache_dir, generate_key_dir
from ..settings import variable

ERRORS: tuple[type[BaseException], ...] = (KeySetError,)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _generate(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser().resolve()
    if out == REPO_ROOT or REPO_ROOT in out.parents:
        raise KeySetError(f"{out} is inside the repository: keys never go into the repo")
    started = time.monotonic()
    generate_key_dir(out, seed=args.seed)
    print(f"key set written to {out} in {time.monotonic() - started:.0f} s (files 0600)")
    print(f"use it with: export {variable('key_dir')}={out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser()
    meta_path = directory / METADATA
    if not meta_path.exists():
        raise KeySetError(f"{meta_path} is missing: not a key directory")
    meta = json.loads(meta_path.read_text())
    files = {p.name: p.stat().st_size for p in sorted(directory.glob("*.bin"))}
    print(json.dumps({"directory": str(directory), **meta, "files": files}, indent=2))
    return 0


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="generate or inspect TFHE key sets")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="generate a new key set (client, server, public, CRS)")
    gen.add_argument("--out", default=str(cache_dir() / "keys" / "default"),
                     help="empty directory to write (default: %(default)s)")  # fmt: skip
    gen.add_argument("--seed", type=int, default=None, help="deterministic client key (tests)")
    gen.set_defaults(handler=_generate)
    show = sub.add_parser("show", help="print a key directory's parameters and file sizes")
    show.add_argument("dir")
    show.set_defaults(handler=_show)
