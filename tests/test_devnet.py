"""The local devnet on real anvil: lifecycle, host-contract installation, CLI, demo traffic."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
from devnet_fixtures import DevnetClient
from web3 import Web3

from fhevm_dagster.cli import main as cli_main
from fhevm_dagster.devnet import (
    DevnetError,
    DevnetInfo,
    ToolMissingError,
    devnet_down,
    devnet_status,
    devnet_up,
    free_port,
    load_devnet,
    load_host_artifact,
    read_ledger,
    run_operator_sweep,
    run_token_traffic,
    start_anvil,
    stop_anvil,
)
from fhevm_dagster.devnet.anvil import port_in_use
from fhevm_dagster.devnet.state import DevnetHost
from fhevm_dagster.devnet.tools import ANVIL_ENV, ROOT_ENV, anvil_binary, node_modules
from fhevm_dagster.devnet.traffic import MINT_AMOUNT
from fhevm_dagster.protocol.addresses import (
    ACL_ADDRESS,
    EXECUTOR_ADDRESS,
    INPUT_VERIFIER_ADDRESS,
    KMS_VERIFIER_ADDRESS,
)
from fhevm_dagster.protocol.handles import parse_handle
from fhevm_dagster.protocol.types import FheType


def test_devnet_info(devnet: DevnetInfo) -> None:
    assert devnet.host_chain_id == 31337 and devnet.gateway_chain_id == 10901
    assert devnet.acl_address == ACL_ADDRESS and devnet.executor_address == EXECUTOR_ADDRESS
    assert devnet.input_verifier_address == INPUT_VERIFIER_ADDRESS
    assert devnet.kms_verifier_address == KMS_VERIFIER_ADDRESS
    assert devnet.host_contracts_version == "0.10.0"
    # Fixed deployment order from fixed deployers: deterministic addresses.
    assert devnet.demo_token_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert devnet.ops_exerciser_address == "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    assert devnet.input_verification_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert devnet.ciphertext_commits_address == "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    assert devnet.deployer_address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    # Two host chains by default; the flat host fields are the first; the same addresses on each.
    assert devnet.host_chain_ids == [31337, 31338]
    first, second = devnet.host_chains
    assert first.rpc_url == devnet.host_rpc_url and first.start_block == devnet.host_start_block
    assert second.rpc_url != first.rpc_url
    assert dataclasses.replace(second, chain_id=31337, rpc_url=first.rpc_url) == first
    assert load_devnet(devnet.state_dir) == devnet
    text = (Path(devnet.state_dir) / "devnet.json").read_text()
    for key_file, _address in (
        (devnet.signer_key_file, devnet.coprocessor_signer_address),
        (devnet.tx_sender_key_file, devnet.coprocessor_tx_sender_address),
        (devnet.kms_signer_key_file, devnet.kms_signer_address),
    ):
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        key = Path(key_file).read_text().strip()
        assert key[2:] not in text  # never a private key in devnet.json
    assert devnet.signer_account().address == devnet.coprocessor_signer_address
    assert devnet.tx_sender_account().address == devnet.coprocessor_tx_sender_address


@pytest.mark.parametrize("chain_id", [31337, 31338])
def test_host_contracts_installed(host_clients: dict[int, DevnetClient], chain_id: int) -> None:
    """Every host chain has the real host contracts, wired to the gateway, and demo apps that call
    them (CustomChainConfig: the host contracts' addresses come from the constructor)."""
    client = host_clients[chain_id]
    info, host, w3 = client.info, client.host, client.host_w3
    assert host.chain_id == chain_id and w3.eth.chain_id == chain_id
    for address, name in (
        (host.acl_address, "ACL"),
        (host.executor_address, "FHEVMExecutor"),
        (host.input_verifier_address, "InputVerifier"),
        (host.kms_verifier_address, "KMSVerifier"),
        (info.hcu_limit_address, "HCULimit"),
        (info.pauser_set_address, "PauserSet"),
    ):
        code = w3.eth.get_code(Web3.to_checksum_address(address)).to_0x_hex()
        assert code == load_host_artifact(name).deployed_bytecode.lower(), name
    assert client.acl.functions.owner().call() == info.host_owner_address
    signers = client.input_verifier.functions.getCoprocessorSigners().call()
    assert signers == [info.coprocessor_signer_address]
    assert client.input_verifier.functions.getThreshold().call() == 1
    executor = client.executor.functions
    assert executor.getHCULimitAddress().call() == info.hcu_limit_address
    assert executor.getVersion().call() == "FHEVMExecutor v0.1.0"
    assert client.acl.functions.paused().call() is False
    config = (host.acl_address, host.executor_address, host.kms_verifier_address)
    for app in (client.token, client.exerciser):
        assert app.functions.coprocessorConfig().call() == config
    # ZamaConfig's protocol id: the local one on 31337, none on a chain it does not know.
    protocol_id = 2**256 - 1 if chain_id == 31337 else 0
    assert client.token.functions.confidentialProtocolId().call() == protocol_id


def test_status_and_idempotent_up(devnet: DevnetInfo) -> None:
    status = devnet_status(devnet.state_dir)
    assert status.running and status.info == devnet
    assert status.host.chain_id == 31337 and status.gateway.chain_id == 10901
    assert [h.chain_id for h in status.hosts] == [31337, 31338] and status.hosts[0] == status.host
    assert [h.name for h in status.hosts] == ["host", "host-1"]
    again = devnet_up(devnet.state_dir, 1, 1)  # already running: ports are not even looked at
    assert again == devnet
    assert devnet_status(devnet.state_dir).hosts == status.hosts


def test_up_refuses_bad_host_layouts(tmp_path: Path) -> None:
    """Checked before any node starts."""
    for kwargs, match in (
        ({"host_chains": 0}, "at least one host chain"),
        ({"host_chains": 2, "host_ports": [1, 2, 3]}, "2 host chains need 2 ports"),
        ({"host_ports": [7, 8]}, "must all differ"),  # 8 is the gateway port
        ({"host_chains": 2, "host_chain_id": 10900}, "also a host chain id"),  # 10901: gateway
    ):
        with pytest.raises(DevnetError, match=match):
            devnet_up(tmp_path, 7, 8, **kwargs)  # type: ignore[arg-type]
    assert not devnet_status(tmp_path).running and not (tmp_path / "devnet.json").exists()


@pytest.mark.devnet  # the CLI starts it
def test_cli_up_status_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not _has_anvil():
        pytest.skip("anvil is not installed: run `npm ci`")
    state = str(tmp_path / "cli-devnet")
    args = ["--state-dir", state]
    assert cli_main(["devnet", "status", *args]) == 3
    host_port, gateway_port = _free_host_port(), free_port()
    up = ["devnet", "up", *args, "--host-port", str(host_port), "--gateway-port", str(gateway_port)]
    try:
        assert cli_main([*up, "--no-demo"]) == 0  # two host chains: host_port and host_port + 2
        out = capsys.readouterr().out
        assert f"127.0.0.1:{host_port} (chain 31337)" in out and "InputVerification 0x" in out
        assert f"127.0.0.1:{host_port + 2} (chain 31338)" in out
        info = load_devnet(state)
        assert info.demo_token_address == "" and info.host_rpc_url.endswith(str(host_port))
        assert [h.rpc_url for h in info.host_chains][1].endswith(str(host_port + 2))
        assert cli_main(["devnet", "status", *args]) == 0
        out = capsys.readouterr().out
        assert "host-1   running" in out and "chain 31338" in out
        host_pids = [h.pid for h in devnet_status(state).hosts]
        assert len(host_pids) == 2 and None not in host_pids
    finally:
        assert cli_main(["devnet", "down", *args]) == 0
    assert "devnet stopped" in capsys.readouterr().out
    status = devnet_status(state)
    assert not status.host.running and not status.gateway.running and status.info is None
    assert not list(Path(state).glob("*.pid"))
    for pid in host_pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    assert not devnet_down(state)  # twice is fine
    assert cli_main(["traffic", "--transfers", "1", *args]) == 1
    assert "fhevm-dagster devnet up" in capsys.readouterr().err
    # The keys survive a restart: same coprocessor identity.
    assert (Path(state) / "keys" / "coprocessor-signer.key").is_file()


def test_anvil_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _has_anvil():
        pytest.skip("anvil is not installed: run `npm ci`")
    node = start_anvil(tmp_path, "probe", port=free_port(), chain_id=1234)
    try:
        with pytest.raises(DevnetError, match="already running"):
            start_anvil(tmp_path, "probe", port=free_port(), chain_id=1234)
        with pytest.raises(DevnetError, match="already in use"):
            start_anvil(tmp_path, "other", port=node.port, chain_id=1234)
    finally:
        assert stop_anvil(tmp_path, "probe")
    assert not (tmp_path / "probe.pid").exists() and (tmp_path / "probe.log").exists()

    monkeypatch.setenv(ANVIL_ENV, str(tmp_path / "no-anvil"))
    with pytest.raises(ToolMissingError, match="does not exist"):
        anvil_binary()
    monkeypatch.delenv(ANVIL_ENV)
    fake_root = tmp_path / "checkout"
    (fake_root / "contracts").mkdir(parents=True)
    (fake_root / "package.json").write_text("{}")
    monkeypatch.setenv(ROOT_ENV, str(fake_root))
    with pytest.raises(ToolMissingError, match="npm ci"):
        node_modules()
    with pytest.raises(ToolMissingError, match="npm ci"):
        anvil_binary()


@pytest.mark.parametrize("chain_id", [31337, 31338])
def test_token_traffic(
    devnet: DevnetInfo, host_clients: dict[int, DevnetClient], chain_id: int
) -> None:
    """Traffic on each host chain, with its own ledger; its result handles carry its chain id."""
    client = host_clients[chain_id]
    others = {c: h.host_w3.eth.block_number for c, h in host_clients.items() if c != chain_id}
    funded_before = len(read_ledger(devnet, chain_id))  # other tests may have sent traffic already
    records = run_token_traffic(devnet, 7, seed=3, chain_id=chain_id)
    mints = [r for r in records if r.kind == "mint"]
    transfers = [r for r in records if r.kind == "transfer"]
    assert len(mints) == 4 - funded_before and len(transfers) == 7
    assert {r.chain_id for r in records} == {chain_id}
    assert [r.expected_success for r in transfers].count(False) >= 2
    assert all(r.expected_success is not None for r in transfers)
    blocks = [r.block_number for r in records]
    assert blocks == sorted(blocks) and blocks[0] >= devnet.host(chain_id).start_block
    ledger = read_ledger(devnet, chain_id)
    assert sum(ledger.values()) == 4 * MINT_AMOUNT
    assert (Path(devnet.state_dir) / f"traffic-ledger-{chain_id}.json").is_file()
    # A failing transfer does not revert and still emits the full encrypted transfer logic.
    failing = next(r for r in transfers if r.expected_success is False)
    receipt = client.host_w3.eth.get_transaction_receipt(failing.tx_hash)  # type: ignore[arg-type]
    events = client.events(receipt)
    assert {"FheGe", "FheIfThenElse", "FheSub", "FheAdd", "Transfer"} <= {e.name for e in events}
    # The executor derives result handles with block.chainid: this chain's id, computed index.
    results = [e.args["result"] for e in events if e.contract == "FHEVMExecutor"]
    assert len(results) >= 5
    assert {(parse_handle(h).chain_id, parse_handle(h).is_computed) for h in results} == {
        (chain_id, True)
    }
    # A second run does not mint again and keeps the ledger consistent.
    more = run_token_traffic(devnet, 3, seed=4, chain_id=chain_id)
    assert [r.kind for r in more] == ["transfer"] * 3
    assert sum(read_ledger(devnet, chain_id).values()) == 4 * MINT_AMOUNT
    # The other host chains saw none of it.
    assert {c: host_clients[c].host_w3.eth.block_number for c in others} == others


def test_operator_sweep_on_second_chain(
    devnet: DevnetInfo, host_clients: dict[int, DevnetClient]
) -> None:
    client = host_clients[31338]
    records = run_operator_sweep(devnet, chain_id=31338, types=(FheType.Uint8,))
    assert records and {r.chain_id for r in records} == {31338}
    results: list[bytes] = []
    for record in records:
        receipt = client.host_w3.eth.get_transaction_receipt(record.tx_hash)  # type: ignore[arg-type]
        results += [
            h for e in client.events(receipt) if e.name == "Exercised" for h in e.args["results"]
        ]
    assert len(results) > len(records)
    assert {parse_handle(h).chain_id for h in results} == {31338}


def test_cli_traffic_on_every_host_chain(
    devnet: DevnetInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["traffic", "--state-dir", devnet.state_dir, "--transfers", "1"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    for host in devnet.host_chains:
        assert f"host chain {host.chain_id} ({host.rpc_url}), transactions:" in out
        assert read_ledger(devnet, host.chain_id)  # minted there
    assert cli_main([*args, "--chain-id", "31338", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["chain_id"]) for r in records] == [("transfer", 31338)]
    assert cli_main([*args, "--chain-id", "5"]) == 1
    assert "no host chain 5" in capsys.readouterr().err


def _free_host_port() -> int:
    """A free port whose second host chain port (+2) is free too."""
    while True:
        port = free_port()
        if port + 2 < 65536 and not port_in_use(port + 2):
            return port


def _has_anvil() -> bool:
    try:
        anvil_binary()
    except ToolMissingError:
        return False
    return True


def _info_fields(**overrides: object) -> dict[str, object]:
    """Every required DevnetInfo field, with a dummy value (0 or "x")."""
    fields: dict[str, object] = {
        f.name: (0 if f.type in ("int", int) else "x")
        for f in dataclasses.fields(DevnetInfo)
        if f.name not in ("peer_coprocessors", "host_chains")
    }
    return {**fields, **overrides}


def test_devnet_info_json_roundtrip() -> None:
    info = DevnetInfo(**_info_fields())  # type: ignore[arg-type]
    assert DevnetInfo.from_json(info.to_json()) == info
    with pytest.raises(DevnetError, match="lacks"):
        DevnetInfo.from_json('{"host_rpc_url": "http://x"}')


def test_devnet_info_host_chains() -> None:
    """The flat host fields are host_chains[0]; a devnet.json without host_chains has one host."""
    old = _info_fields(host_chain_id=31337, host_rpc_url="http://h0", host_start_block=7)
    info = DevnetInfo.from_json(json.dumps(old))  # written before there were host chains
    assert info.host_chains == [
        DevnetHost(31337, "http://h0", "x", "x", "x", "x", "x", "x", start_block=7)
    ]
    assert info.host() == info.host(31337) == info.host_chains[0] and info.host_chain_ids == [31337]
    with pytest.raises(DevnetError, match="no host chain 31338"):
        info.host(31338)
    second = dataclasses.replace(info.host_chains[0], chain_id=31338, rpc_url="http://h1")
    two = dataclasses.replace(info, host_chains=[info.host_chains[0], second])
    assert DevnetInfo.from_json(two.to_json()) == two and two.host(31338) == second
    with pytest.raises(DevnetError, match="disagrees with the flat host fields"):
        dataclasses.replace(info, host_chains=[second])
    with pytest.raises(DevnetError, match="malformed host_chains"):
        DevnetInfo.from_json(json.dumps({**old, "host_chains": [{"chain_id": 1}]}))
