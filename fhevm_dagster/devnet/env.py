"""The devnet as settings: a `.env` file that `dagster dev` loads (from its working directory), and
the host chain registry it names. Every value is a variable of `fhevm_dagster.settings`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..settings import variable
from .state import INFO_FILE, DevnetInfo

REGISTRY_FILE = "host-chains.json"


def devnet_settings(info: DevnetInfo) -> dict[str, str]:
    """The settings of a coprocessor on this devnet; writes the host chain registry beside it."""
    registry = Path(info.state_dir) / REGISTRY_FILE
    registry.write_text(
        json.dumps(
            [
                {
                    "chain_id": h.chain_id,
                    "rpc_url": h.rpc_url,
                    "acl_address": h.acl_address,
                    "executor_address": h.executor_address,
                    "start_block": h.start_block,
                }
                for h in info.host_chains
            ],
            indent=2,
        )
        + "\n"
    )
    values = {
        # The devnet itself: what lets its public test keys serve its chains (and nothing else).
        "devnet_json": str(Path(info.state_dir) / INFO_FILE),
        "host_chains": str(registry),
        "gateway_chain_id": str(info.gateway_chain_id),
        "gateway_rpc_url": info.gateway_rpc_url,
        "gateway_input_verification_address": info.input_verification_address,
        "gateway_ciphertext_commits_address": info.ciphertext_commits_address,
        "gateway_start_block": str(info.gateway_start_block),
        "signer_key_file": info.signer_key_file,
        "tx_sender_key_file": info.tx_sender_key_file,
    }
    return {variable(name): value for name, value in values.items()}


def write_env_file(info: DevnetInfo, path: Path) -> None:
    """`path` as a dotenv file of `devnet_settings` (0600: it names the key files)."""
    lines = [f"# Written by `fhevm-dagster devnet up` for the devnet in {info.state_dir}."]
    lines += [f"{k}={v}" for k, v in devnet_settings(info).items()]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
