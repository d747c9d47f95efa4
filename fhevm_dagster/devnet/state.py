"""The devnet's state dir: `devnet.json` (DevnetInfo with its DevnetHost chains), per-devnet keys
(0600), anvil PIDs/logs.

DevnetInfo is the one document other parts of the project read to find the local chains, contracts
and coprocessor identity; it never holds a private key, only the paths of the key files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ..chain.keyfiles import read_private_key_file, write_private_key_file
from ..settings import load_settings
from .errors import DevnetError

INFO_FILE = "devnet.json"
KEYS_DIR = "keys"


def default_state_dir() -> Path:
    """`Settings.devnet_dir` (by default ~/.cache/fhevm-dagster/devnet)."""
    return load_settings().devnet_dir


def resolve_state_dir(state_dir: Path | str | None) -> Path:
    return Path(state_dir).expanduser().resolve() if state_dir is not None else default_state_dir()


@dataclass(frozen=True)
class DevnetHost:
    """One host chain of the devnet: its anvil, the real host contracts, the demo apps on it.

    The host contracts sit at the same addresses on every host chain (their bytecode bakes in the
    local addresses); handles differ because the executor derives them with `block.chainid`.
    """

    chain_id: int
    rpc_url: str
    acl_address: str
    executor_address: str
    input_verifier_address: str
    kms_verifier_address: str
    demo_token_address: str
    ops_exerciser_address: str
    # First block after the host contracts were installed (ingestion may start here).
    start_block: int


@dataclass(frozen=True)
class DevnetInfo:
    """Everything needed to talk to a running local devnet (`<state_dir>/devnet.json`).

    A devnet has one gateway chain and one or more host chains, all listed in `host_chains`. The
    flat host fields (host_rpc_url, host_chain_id, acl_address, executor_address,
    input_verifier_address, kms_verifier_address, demo_token_address, ops_exerciser_address,
    host_start_block) are the FIRST host chain, `host_chains[0]`, kept for the callers that serve
    one host chain. Constructing a DevnetInfo whose flat fields disagree with `host_chains[0]`
    fails; one without `host_chains` (a devnet.json written before there were several) gets the one
    host chain its flat fields describe.
    """

    state_dir: str
    host_rpc_url: str
    gateway_rpc_url: str
    host_chain_id: int
    gateway_chain_id: int
    # Host chain: the real @fhevm/host-contracts (SPEC §9), the same addresses on every host chain.
    host_contracts_version: str
    acl_address: str
    executor_address: str
    input_verifier_address: str
    kms_verifier_address: str
    hcu_limit_address: str
    pauser_set_address: str
    host_owner_address: str
    # Gateway chain: our InputVerification / CiphertextCommits; Decryption is a placeholder.
    input_verification_address: str
    ciphertext_commits_address: str
    decryption_address: str
    coprocessor_threshold: int
    # Demo apps on the host, deployed in a fixed order by the deployer (deterministic addresses).
    demo_token_address: str
    ops_exerciser_address: str
    deployer_address: str
    # This coprocessor's identity; keys live in 0600 files, never in this document.
    coprocessor_signer_address: str
    coprocessor_tx_sender_address: str
    kms_signer_address: str
    signer_key_file: str
    tx_sender_key_file: str
    kms_signer_key_file: str
    # First host block after the host contracts were installed (ingestion may start here).
    host_start_block: int
    gateway_start_block: int
    # Further coprocessors of the gateway's set (consensus tests): one 0600 key file pair each,
    # [signer key file, tx sender key file]; the gateway threshold counts them all.
    peer_coprocessors: list[list[str]] = dataclasses.field(default_factory=list)
    # Every host chain, the first one being the flat host_* fields above.
    host_chains: list[DevnetHost] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        first = self._first_host()
        if not self.host_chains:
            object.__setattr__(self, "host_chains", [first])
        elif self.host_chains[0] != first:
            raise DevnetError(
                f"host_chains[0] {self.host_chains[0]} disagrees with the flat host fields {first}"
            )

    def _first_host(self) -> DevnetHost:
        return DevnetHost(
            chain_id=self.host_chain_id,
            rpc_url=self.host_rpc_url,
            acl_address=self.acl_address,
            executor_address=self.executor_address,
            input_verifier_address=self.input_verifier_address,
            kms_verifier_address=self.kms_verifier_address,
            demo_token_address=self.demo_token_address,
            ops_exerciser_address=self.ops_exerciser_address,
            start_block=self.host_start_block,
        )

    @property
    def host_chain_ids(self) -> list[int]:
        return [h.chain_id for h in self.host_chains]

    def host(self, chain_id: int | None = None) -> DevnetHost:
        """The host chain `chain_id` (the first host chain when None)."""
        if chain_id is None:
            return self.host_chains[0]
        for host in self.host_chains:
            if host.chain_id == chain_id:
                return host
        raise DevnetError(
            f"the devnet has no host chain {chain_id}; its hosts: {self.host_chain_ids}"
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DevnetInfo:
        """Reads devnet.json, also one written before `host_chains` (then one host chain)."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = required - data.keys()
        if missing:
            raise DevnetError(
                f"devnet.json lacks {sorted(missing)}: recreate it with `fhevm-dagster devnet up`"
            )
        fields = {k: v for k, v in data.items() if k in names}
        host_names = {f.name for f in dataclasses.fields(DevnetHost)}
        try:
            fields["host_chains"] = [
                DevnetHost(**{k: v for k, v in host.items() if k in host_names})
                for host in data.get("host_chains", [])
            ]
        except (TypeError, AttributeError) as exc:
            raise DevnetError(
                f"devnet.json has malformed host_chains ({exc}): recreate it with "
                "`fhevm-dagster devnet up`"
            ) from exc
        return cls(**fields)

    def signer_account(self) -> LocalAccount:
        """The coprocessor's EIP-712 signer (gateway answers, host inputProofs)."""
        return read_private_key_file(Path(self.signer_key_file))

    def tx_sender_account(self) -> LocalAccount:
        """The coprocessor's gateway transaction sender."""
        return read_private_key_file(Path(self.tx_sender_key_file))

    def kms_signer_account(self) -> LocalAccount:
        return read_private_key_file(Path(self.kms_signer_key_file))


def save_devnet(info: DevnetInfo) -> Path:
    path = Path(info.state_dir) / INFO_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(info.to_json())
    tmp.replace(path)
    return path


def load_devnet(state_dir: Path | str | None = None) -> DevnetInfo:
    """The DevnetInfo of a devnet brought up in `state_dir` (default state dir when None)."""
    path = resolve_state_dir(state_dir) / INFO_FILE
    if not path.is_file():
        raise DevnetError(f"no devnet in {path.parent}: run `fhevm-dagster devnet up`")
    return DevnetInfo.from_json(path.read_text())


def ensure_key(state_dir: Path, name: str) -> tuple[LocalAccount, Path]:
    """The key `<state_dir>/keys/<name>.key`, generated on first use and kept across restarts."""
    path = state_dir / KEYS_DIR / f"{name}.key"
    if path.is_file():
        return read_private_key_file(path), path
    account: LocalAccount = Account.create()
    write_private_key_file(path, account)
    return account, path
