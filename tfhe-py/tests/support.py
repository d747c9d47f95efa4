"""What the binding tests share, without the fhevm_dagster package: the fhEVM numbers they call
the binding with, and the committed test key set.

The numbers are those of FHEVMExecutor (opcodes) and of byte 30 of a handle (types); the package's
own tables live in `fhevm_dagster.protocol`, and tests/test_tfhe_type_table.py holds the binding's
Rust tables equal to them. The client key, public key and CRS are committed (small); the 1.6 GB
server key is derived from the client key and the seed of `keys.json` on first use and cached
outside the clone, under the same name the package gives it, so the two share one derivation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import tfhe_py

FIXTURES = Path(__file__).parent / "fixtures"
TEST_KEYS = FIXTURES / "keys"
SEED = int(json.loads((TEST_KEYS / "keys.json").read_text())["server_key_seed"])


class FheType(IntEnum):
    """The fhEVM types (byte 30 of a handle, TFHE-rs `FheTypes`)."""

    Bool = 0
    Uint4 = 1
    Uint8 = 2
    Uint16 = 3
    Uint32 = 4
    Uint64 = 5
    Uint128 = 6
    Uint160 = 7
    Uint256 = 8
    Uint512 = 9
    Uint1024 = 10
    Uint2048 = 11

    @property
    def bits(self) -> int:
        """Plaintext width in bits (Bool counts as 1; Uint160 is an address)."""
        return 1 if self is FheType.Bool else int(self.name.removeprefix("Uint"))


#: The types of current host contracts; Uint4, Uint512, Uint1024 and Uint2048 are retired.
HOST_TYPES = frozenset(FheType) - {
    FheType.Uint4,
    FheType.Uint512,
    FheType.Uint1024,
    FheType.Uint2048,
}


class Operator(IntEnum):
    """The FHEVMExecutor opcodes these tests call."""

    Add = 0
    Sub = 1
    Mul = 2
    Div = 3
    Rem = 4
    Neg = 20
    VerifyInput = 22
    Cast = 23
    TrivialEncrypt = 24
    IfThenElse = 25
    Rand = 26
    RandBounded = 27
    Sum = 28
    IsIn = 29
    MulDiv = 30


@dataclass(frozen=True)
class KeySet:
    """The test key set; `engine()` computes with it."""

    server_key: tfhe_py.ServerKey
    public_key: tfhe_py.CompactPublicKey
    crs: tfhe_py.Crs
    client_key: tfhe_py.ClientKey

    def engine(self) -> tfhe_py.Engine:
        return tfhe_py.Engine(self.server_key, self.public_key, self.crs)


def _cached(form: str) -> Path:
    digest = hashlib.sha256((TEST_KEYS / "client_key.bin").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("FHEVM_DAGSTER_CACHE", "~/.cache/fhevm-dagster")).expanduser()
    name = f"{digest}-{SEED:032x}-{tfhe_py.TFHE_RS_VERSION}-{form}.bin"
    return cache / "server-keys" / name


def _save(key: tfhe_py.ServerKey | tfhe_py.CompressedServerKey, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    key.save(partial)
    partial.replace(target)


def compressed_server_key() -> tfhe_py.CompressedServerKey:
    """The compressed server key the seed derives (what a GPU engine expands), cached."""
    target = _cached("compressed")
    if target.exists():
        return tfhe_py.CompressedServerKey.load(target)
    key = tfhe_py.ClientKey.load(TEST_KEYS / "client_key.bin").compressed_server_key(SEED)
    _save(key, target)
    return key


def server_key() -> tfhe_py.ServerKey:
    """The decompression of `compressed_server_key()`, cached."""
    target = _cached("decompressed")
    if target.exists():
        return tfhe_py.ServerKey.load(target)
    key = compressed_server_key().decompress()
    _save(key, target)
    return key


def load_test_keys() -> KeySet:
    return KeySet(
        server_key=server_key(),
        public_key=tfhe_py.CompactPublicKey.load(TEST_KEYS / "public_key.bin"),
        crs=tfhe_py.Crs.load(TEST_KEYS / "crs.bin"),
        client_key=tfhe_py.ClientKey.load(TEST_KEYS / "client_key.bin"),
    )
