"""Demo traffic on a host chain: ConfidentialToken transfers and the OpsExerciser operator sweep.

Each function takes the host chain's id (`chain_id`, default: the devnet's first host chain). Token
traffic keeps a plaintext ledger per host chain (`<state_dir>/traffic-ledger-<chain_id>.json`) of
what the encrypted balances should hold, so tests can check decrypted results and know which
transfers had to fail the encrypted balance check. The operator sweep makes the executor emit every
operator of host-contracts 0.10.0 on every type it accepts, each result allowed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxReceipt

from ..chain.sender import MAX_TX_GAS
from ..protocol.opcodes import HOST_OPERATORS, OPERATORS, Operator, OpKind, operators_of
from ..protocol.types import HOST_TYPES, FheType
from .artifacts import load_artifact
from .chain import anvil_account, connect, contract_at, revert_error, send_transaction
from .errors import DevnetError
from .lifecycle import DEPLOYER_INDEX, TRAFFIC_USER_INDEXES
from .state import DevnetHost, DevnetInfo

#: The ledger of host chain `chain_id`, in the state dir.
LEDGER_FILE = "traffic-ledger-{chain_id}.json"
MINT_AMOUNT = 1_000_000
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class TxRecord:
    """One demo transaction: what it did, where it landed (host chain and block), whether its
    transfer moves funds."""

    kind: str
    tx_hash: str
    block_number: int
    sender: str
    detail: str
    expected_success: bool | None = None
    chain_id: int | None = None


def _record(
    host: DevnetHost,
    kind: str,
    receipt: TxReceipt,
    sender: str,
    detail: str,
    ok: bool | None = None,
) -> TxRecord:
    return TxRecord(
        kind,
        receipt["transactionHash"].to_0x_hex(),
        receipt["blockNumber"],
        sender,
        detail,
        ok,
        host.chain_id,
    )


def token_contract(w3: Web3, info: DevnetInfo, chain_id: int | None = None) -> Contract:
    """The demo token of host chain `chain_id` (the first host chain when None)."""
    address = info.host(chain_id).demo_token_address
    return contract_at(w3, address, load_artifact("ConfidentialToken").abi)


def _load_ledger(path: Path, token: str, genesis: str) -> dict[str, int]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if doc.get("token") != token or doc.get("genesis") != genesis:
        return {}
    return {k: int(v) for k, v in doc["balances"].items()}


def _save_ledger(path: Path, token: str, genesis: str, balances: dict[str, int]) -> None:
    path.write_text(
        json.dumps({"token": token, "genesis": genesis, "balances": balances}, indent=2) + "\n"
    )


def ledger_path(info: DevnetInfo, chain_id: int | None = None) -> Path:
    """The traffic ledger of host chain `chain_id` (the first host chain when None)."""
    return Path(info.state_dir) / LEDGER_FILE.format(chain_id=info.host(chain_id).chain_id)


def read_ledger(info: DevnetInfo, chain_id: int | None = None) -> dict[str, int]:
    """Plaintext balances the demo token's encrypted balances of host chain `chain_id` (the first
    when None) decrypt to (empty if unknown)."""
    host = info.host(chain_id)
    w3 = connect(host.rpc_url)
    genesis = w3.eth.get_block(0)["hash"].to_0x_hex()
    return _load_ledger(ledger_path(info, host.chain_id), host.demo_token_address, genesis)


def run_token_traffic(
    info: DevnetInfo,
    transfers: int,
    *,
    seed: int = 0,
    users: Iterable[int] = TRAFFIC_USER_INDEXES,
    chain_id: int | None = None,
    pairs: Sequence[tuple[int, int]] = (),
) -> list[TxRecord]:
    """Mints MINT_AMOUNT to each user on first use, then `transfers` transferAmount calls, on host
    chain `chain_id` (the first host chain when None): between two users drawn at random, or
    with `pairs` (anvil account indexes, sender first; its users are `users`), transfer i from
    pairs[i] (disjoint pairs make transfers that do not depend on one another).

    Every third transfer asks for nearly 2**64 - 1, more than any balance, so it fails the encrypted
    balance check and moves 0; the others move at most a third of the sender's ledger balance.
    """
    host = info.host(chain_id)
    if not host.demo_token_address:
        raise DevnetError(f"host chain {host.chain_id} has no demo token (devnet up --no-demo)")
    w3 = connect(host.rpc_url)
    token = token_contract(w3, info, host.chain_id)
    if pairs:
        users = sorted({i for pair in pairs for i in pair})
    accounts = [anvil_account(i) for i in users]
    by_index = dict(zip(users, accounts, strict=True))
    genesis = w3.eth.get_block(0)["hash"].to_0x_hex()
    path = ledger_path(info, host.chain_id)
    ledger = _load_ledger(path, token.address, genesis)
    records: list[TxRecord] = []

    owner = anvil_account(DEPLOYER_INDEX)
    for account in accounts:
        if bytes(token.functions.balanceOf(account.address).call()) != bytes(32):
            ledger.setdefault(account.address, -1)  # funded by someone else: unknown balance
            continue
        receipt = send_transaction(w3, owner, token.functions.mint(account.address, MINT_AMOUNT))
        ledger[account.address] = MINT_AMOUNT
        records.append(
            _record(
                host,
                "mint",
                receipt,
                owner.address,
                f"mint {MINT_AMOUNT} to {account.address}",
                True,
            )
        )
    _save_ledger(path, token.address, genesis, ledger)

    rng = random.Random(seed)
    for i in range(transfers):
        if pairs:
            sender, receiver = (by_index[j] for j in pairs[i % len(pairs)])
        else:
            sender, receiver = rng.sample(accounts, 2)
        balance = ledger.get(sender.address, -1)  # -1: unknown
        if i % 3 == 2:
            amount = _UINT64_MAX - rng.randrange(1000)  # more than any balance: must move 0
        else:
            amount = rng.randrange(0, max(balance, 0) // 3 + 1)
        receipt = send_transaction(
            w3, sender, token.functions.transferAmount(receiver.address, amount)
        )
        expected: bool | None = None if balance < 0 else amount <= balance
        if expected:
            ledger[sender.address] = balance - amount
        receiver_balance = ledger.get(receiver.address, -1)
        if receiver_balance >= 0 and expected is None:
            ledger[receiver.address] = -1
        elif receiver_balance >= 0 and expected:
            ledger[receiver.address] = receiver_balance + amount
        detail = f"transferAmount {amount} from {sender.address} to {receiver.address}"
        records.append(_record(host, "transfer", receipt, sender.address, detail, expected))
        _save_ledger(path, token.address, genesis, ledger)
    return records


# ---- OpsExerciser sweep ---------------------------------------------------------------------

_O = Operator
#: What the sweep sends, all read from the protocol table (`protocol.opcodes.OPERATORS`): the
#: operators of host-contracts 0.10.0 on every type each accepts. OpsExerciser takes binary opcodes
#: by bit mask, does Neg unless Bool and Not on every type, and encrypts the host types only.
BINARY_OPS_BY_TYPE: dict[FheType, tuple[Operator, ...]] = {
    t: ops
    for t in sorted(HOST_TYPES)
    if (ops := tuple(op for op in operators_of(OpKind.BINARY)
                     if op in HOST_OPERATORS and t in OPERATORS[op].in_types))
}  # fmt: skip
UNARY_TYPES = tuple(sorted(OPERATORS[_O.Neg].in_types | OPERATORS[_O.Not].in_types))
SELECT_TYPES = tuple(sorted(OPERATORS[_O.IfThenElse].in_types))
CAST_TYPES = tuple(sorted(OPERATORS[_O.Cast].in_types))
CAST_TARGETS = tuple(sorted(OPERATORS[_O.Cast].out_types))
TRIVIAL_TYPES = tuple(sorted(OPERATORS[_O.TrivialEncrypt].out_types))
RAND_TYPES = tuple(sorted(OPERATORS[_O.Rand].out_types))
RAND_BOUNDED_TYPES = tuple(sorted(OPERATORS[_O.RandBounded].out_types))
del _O
#: Representative operands per type (a, b): mixed magnitudes.
OPERANDS: dict[FheType, tuple[int, int]] = {
    FheType.Bool: (1, 0),
    FheType.Uint8: (200, 7),
    FheType.Uint16: (60_000, 300),
    FheType.Uint32: (4_000_000_000, 77_777),
    FheType.Uint64: (2**63 + 12_345, 987_654_321),
    FheType.Uint128: (2**127 + 99, 2**70 + 3),
    FheType.Uint160: (
        0x5FBDB2315678AFECB367F032D93F642F64180AA3,
        0x5FBDB2315678AFECB367F032D93F642F64180AA3,
    ),
    FheType.Uint256: (2**255 + 2**128 + 1, 2**200 + 5),
}
_LIMIT_ERRORS = ("HCUTransactionLimitExceeded", "HCUTransactionDepthLimitExceeded")


def exerciser_contract(w3: Web3, info: DevnetInfo, chain_id: int | None = None) -> Contract:
    """The OpsExerciser of host chain `chain_id` (the first host chain when None)."""
    address = info.host(chain_id).ops_exerciser_address
    return contract_at(w3, address, load_artifact("OpsExerciser").abi)


def _mask(ops: Iterable[int]) -> int:
    mask = 0
    for op in ops:
        mask |= 1 << op
    return mask


def _send_binary(
    w3: Web3, exerciser: Contract, account: LocalAccount, fhe_type: FheType, ops: tuple[int, ...]
) -> list[TxReceipt]:
    """binaryOps for `ops`, halving the set while a transaction exceeds the HCU or gas limit."""
    a, b = OPERANDS[fhe_type]
    call = exerciser.functions.binaryOps(int(fhe_type), a, b, _mask(ops), 3)
    label = f"binaryOps {fhe_type.name}"
    try:
        too_big = call.estimate_gas({"from": account.address}) > MAX_TX_GAS * 0.8
    except (ContractCustomError, ContractLogicError) as exc:
        reverted = revert_error(label, exc)
        if reverted.error not in _LIMIT_ERRORS:
            raise reverted from exc
        too_big = True
    if too_big and len(ops) > 1:
        half = len(ops) // 2
        return _send_binary(w3, exerciser, account, fhe_type, ops[:half]) + _send_binary(
            w3, exerciser, account, fhe_type, ops[half:]
        )
    return [send_transaction(w3, account, call, label=label)]


def run_operator_sweep(
    info: DevnetInfo,
    *,
    sender_index: int = DEPLOYER_INDEX,
    types: Collection[int] = HOST_TYPES,
    chain_id: int | None = None,
) -> list[TxRecord]:
    """Every operator of host-contracts 0.10.0 on every type it accepts (or on `types`, to keep
    an FHE evaluation of the sweep short), each result allowed, on host chain `chain_id` (the first
    host chain when None).

    Includes a cross-transaction dependency: `accumulate` twice, then `scaleStored`, each reading
    the encrypted value stored by the previous transaction.
    """
    host = info.host(chain_id)
    if not host.ops_exerciser_address:
        raise DevnetError(f"host chain {host.chain_id} has no OpsExerciser (devnet up --no-demo)")
    w3 = connect(host.rpc_url)
    exerciser = exerciser_contract(w3, info, host.chain_id)
    account = anvil_account(sender_index)
    records: list[TxRecord] = []

    def sent(kind: str, receipt: TxReceipt, detail: str) -> None:
        records.append(_record(host, kind, receipt, account.address, detail))

    def chosen(candidates: Iterable[FheType]) -> list[FheType]:
        return [t for t in candidates if t in types]

    for fhe_type, ops in BINARY_OPS_BY_TYPE.items():
        if fhe_type not in types:
            continue
        for receipt in _send_binary(w3, exerciser, account, fhe_type, ops):
            sent("binary", receipt, f"binary ops on {fhe_type.name}")
    for fhe_type in chosen(UNARY_TYPES):
        call = exerciser.functions.unaryOps(int(fhe_type), OPERANDS[fhe_type][0])
        sent("unary", send_transaction(w3, account, call), f"neg/not on {fhe_type.name}")
    for fhe_type in chosen(SELECT_TYPES):
        a, b = OPERANDS[fhe_type]
        call = exerciser.functions.selectOp(int(fhe_type), True, a, b)
        sent("select", send_transaction(w3, account, call), f"ifThenElse on {fhe_type.name}")
    for fhe_type in chosen(CAST_TYPES):
        # A cast to the operand's own type is refused (validate_operation, the executor).
        targets = [t for t in chosen(CAST_TARGETS) if t != fhe_type]
        if not targets:
            continue
        call = exerciser.functions.castOps(
            int(fhe_type), OPERANDS[fhe_type][0], [int(t) for t in targets]
        )
        detail = f"cast from {fhe_type.name} to {', '.join(t.name for t in targets)}"
        sent("cast", send_transaction(w3, account, call), detail)
    call = exerciser.functions.trivialOps(12_345, [int(t) for t in chosen(TRIVIAL_TYPES)])
    sent("trivial", send_transaction(w3, account, call), "trivialEncrypt to every type")
    for fhe_type in chosen(RAND_TYPES):
        # randOps sends RandBounded too when the bound is not 0.
        bound = 2 ** min(fhe_type.bits - 1, 64) if fhe_type in RAND_BOUNDED_TYPES else 0
        call = exerciser.functions.randOps(int(fhe_type), bound)
        detail = f"rand/randBounded({bound}) on {fhe_type.name}"
        sent("rand", send_transaction(w3, account, call), detail)
    for value in (41, 1):
        receipt = send_transaction(w3, account, exerciser.functions.accumulate(value))
        sent("stored", receipt, f"accumulate {value}")
    receipt = send_transaction(w3, account, exerciser.functions.scaleStored(3, 100))
    sent("stored", receipt, "scaleStored 3 cap 100")
    return records
