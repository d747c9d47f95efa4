"""Command groups `fhevm-dagster devnet up|down|status` and `fhevm-dagster traffic`.

`devnet up` starts `--host-chains` host chains (default 2: chain ids 31337 and 31338 on ports 8545
and 8547) and the gateway (8546); `traffic` sends to every host chain unless `--chain-id` picks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from ..devnet.env import write_env_file
from ..devnet.errors import DevnetError
from ..devnet.lifecycle import (
    DEFAULT_GATEWAY_CHAIN_ID,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_HOST_CHAINS,
    DEFAULT_HOST_PORT,
    HOST_PORT_STEP,
    devnet_down,
    devnet_status,
    devnet_up,
)
from ..devnet.state import load_devnet, resolve_state_dir
from ..devnet.traffic import TxRecord, run_operator_sweep, run_token_traffic
from ..settings import variable

ERRORS: tuple[type[BaseException], ...] = (DevnetError,)


def _state_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"state dir (default ${variable('devnet_dir')} or ~/.cache/fhevm-dagster/devnet)",
    )


def register(subparsers: Any) -> None:
    devnet = subparsers.add_parser("devnet", help="local host chains + gateway anvil chain")
    actions = devnet.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="start the chains, install host contracts, deploy contracts")
    _state_dir_arg(up)
    up.add_argument(
        "--host-chains",
        type=int,
        default=DEFAULT_HOST_CHAINS,
        help=f"host chains, chain ids 31337, 31338, … (default {DEFAULT_HOST_CHAINS})",
    )
    up.add_argument(
        "--host-port",
        type=int,
        default=DEFAULT_HOST_PORT,
        help=f"port of the first host chain; host chain i gets PORT + {HOST_PORT_STEP}*i "
        f"(default {DEFAULT_HOST_PORT}, {DEFAULT_HOST_PORT + HOST_PORT_STEP}, …)",
    )
    up.add_argument("--gateway-port", type=int, default=DEFAULT_GATEWAY_PORT)
    up.add_argument("--gateway-chain-id", type=int, default=DEFAULT_GATEWAY_CHAIN_ID)
    up.add_argument("--no-demo", action="store_true", help="skip ConfidentialToken/OpsExerciser")
    up.add_argument(
        "--block-time",
        type=int,
        default=None,
        help="mine a block every N seconds (default: on demand)",
    )
    up.add_argument(
        "--coprocessors",
        type=int,
        default=1,
        help="coprocessors in the gateway's set, a majority needed (default 1; 2 for consensus)",
    )
    up.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="also write the devnet's settings there as a dotenv file (`dagster dev` loads .env)",
    )
    up.add_argument("--json", action="store_true", help="print devnet.json")
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", help="stop every chain")
    _state_dir_arg(down)
    down.set_defaults(handler=_down)

    status = actions.add_parser("status", help="is the devnet running (exit 0) or not (exit 3)")
    _state_dir_arg(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    traffic = subparsers.add_parser("traffic", help="demo transactions on the host chains")
    _state_dir_arg(traffic)
    traffic.add_argument(
        "--transfers",
        type=int,
        default=10,
        help="ConfidentialToken transfers on each chosen host chain (default 10)",
    )
    traffic.add_argument("--seed", type=int, default=0)
    traffic.add_argument(
        "--ops", action="store_true", help="also run the OpsExerciser operator sweep on them"
    )
    traffic.add_argument(
        "--chain-id",
        type=int,
        action="append",
        default=None,
        help="host chain to send to (repeatable; default: every host chain of the devnet)",
    )
    traffic.add_argument("--json", action="store_true")
    traffic.set_defaults(handler=_traffic)


def _up(args: argparse.Namespace) -> int:
    info = devnet_up(
        args.state_dir,
        args.host_port,
        args.gateway_port,
        host_chains=args.host_chains,
        gateway_chain_id=args.gateway_chain_id,
        deploy_demo=not args.no_demo,
        block_time=args.block_time,
        coprocessors=args.coprocessors,
    )
    if args.env_file is not None:
        write_env_file(info, args.env_file)
    if args.json:
        print(info.to_json(), end="")
        return 0
    if args.env_file is not None:
        print(f"settings for `dagster dev`: {args.env_file}")
    for host in info.host_chains:
        print(f"host     {host.rpc_url} (chain {host.chain_id})  start block {host.start_block}")
        print(f"         ConfidentialToken {host.demo_token_address}")
        print(f"         OpsExerciser {host.ops_exerciser_address}")
    print(f"ACL {info.acl_address}  FHEVMExecutor {info.executor_address}  (on every host chain)")
    print(f"gateway  {info.gateway_rpc_url} (chain {info.gateway_chain_id})")
    print(f"InputVerification {info.input_verification_address}")
    print(f"CiphertextCommits {info.ciphertext_commits_address}")
    print(f"coprocessor signer    {info.coprocessor_signer_address}")
    print(f"coprocessor tx sender {info.coprocessor_tx_sender_address}")
    total = 1 + len(info.peer_coprocessors)
    print(f"threshold {info.coprocessor_threshold} of {total} coprocessors")
    print(f"state: {Path(info.state_dir) / 'devnet.json'}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = devnet_down(args.state_dir)
    print(
        "devnet stopped"
        if stopped
        else f"no devnet was running in {resolve_state_dir(args.state_dir)}"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    status = devnet_status(args.state_dir)
    if args.json:
        print(json.dumps(dataclasses.asdict(status), indent=2, sort_keys=True))
    else:
        for node in (*(status.hosts or [status.host]), status.gateway):
            if node.running:
                where = f"{node.rpc_url} chain {node.chain_id} block {node.block_number}"
                print(f"{node.name:8} running pid {node.pid} {where}")
            else:
                print(f"{node.name:8} stopped")
        print(f"state: {status.state_dir}" + ("" if status.info else " (no devnet.json)"))
    return 0 if status.running else 3


def _print_records(records: list[TxRecord]) -> None:
    for r in records:
        outcome = {True: "moves funds", False: "fails balance check", None: ""}[r.expected_success]
        print(f"block {r.block_number:6}  {r.tx_hash}  {r.detail}  {outcome}".rstrip())


def _traffic(args: argparse.Namespace) -> int:
    info = load_devnet(args.state_dir)
    if not info.demo_token_address:
        raise DevnetError("this devnet has no demo token (brought up with --no-demo)")
    chain_ids = list(dict.fromkeys(args.chain_id or info.host_chain_ids))
    hosts = [info.host(chain_id) for chain_id in chain_ids]  # unknown chain ids fail first
    records: list[TxRecord] = []
    for host in hosts:
        batch = run_token_traffic(info, args.transfers, seed=args.seed, chain_id=host.chain_id)
        if args.ops:
            batch += run_operator_sweep(info, chain_id=host.chain_id)
        records += batch
        if not args.json:
            print(f"host chain {host.chain_id} ({host.rpc_url}), transactions: {len(batch)}")
            _print_records(batch)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in records], indent=2))
    return 0
