"""Bad input raises `TfheError` naming the problem; nothing crashes the interpreter."""

from __future__ import annotations

import pytest
import tfhe_py
from support import FheType as T
from support import KeySet, Operator
from tfhe_py import MAX_SUM_VALUES, MAX_WIDE_VALUES


@pytest.fixture(scope="module")
def u8(client_key: tfhe_py.ClientKey) -> tfhe_py.Ciphertext:
    return client_key.encrypt(7, T.Uint8)


@pytest.fixture(scope="module")
def u16(client_key: tfhe_py.ClientKey) -> tfhe_py.Ciphertext:
    return client_key.encrypt(7, T.Uint16)


@pytest.fixture(scope="module")
def flag(client_key: tfhe_py.ClientKey) -> tfhe_py.Ciphertext:
    return client_key.encrypt(1, T.Bool)


def test_mismatched_operand_types(
    engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext, u16: tfhe_py.Ciphertext
) -> None:
    expected = r"FheAdd: unsupported operand types \(Uint8, Uint16\)"
    with pytest.raises(tfhe_py.TfheError, match=expected):
        engine.execute(Operator.Add, [u8, u16])


def test_type_outside_the_table(engine: tfhe_py.Engine, flag: tfhe_py.Ciphertext) -> None:
    expected = r"FheAdd: unsupported operand types \(Bool, Bool\)"
    with pytest.raises(tfhe_py.TfheError, match=expected):
        engine.execute(Operator.Add, [flag, flag])
    with pytest.raises(tfhe_py.TfheError, match="FheNeg: unsupported"):
        engine.execute(Operator.Neg, [flag])


def test_encrypted_divisor_is_refused(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    with pytest.raises(tfhe_py.TfheError, match="scalar only"):
        engine.execute(Operator.Div, [u8, u8])


@pytest.mark.parametrize("op", [Operator.Div, Operator.Rem])
def test_scalar_division_by_zero(
    engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext, op: Operator
) -> None:
    with pytest.raises(tfhe_py.TfheError, match="division by zero"):
        engine.execute(op, [u8, bytes(32)])
    # 256 truncated to 8 bits is zero too.
    with pytest.raises(tfhe_py.TfheError, match="division by zero"):
        engine.execute(op, [u8, (256).to_bytes(2, "big")])


def test_mul_div_by_zero(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    with pytest.raises(tfhe_py.TfheError, match="division by zero"):
        engine.execute(Operator.MulDiv, [u8, u8, b"\x00"])


def test_result_type_must_match_the_handle(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    with pytest.raises(tfhe_py.TfheError, match="the result handle says Uint16"):
        engine.execute(Operator.Add, [u8, u8], T.Uint16)


def test_operations_needing_a_result_type(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    with pytest.raises(tfhe_py.TfheError, match="result type is required"):
        engine.execute(Operator.Cast, [u8])
    with pytest.raises(tfhe_py.TfheError, match="cannot cast to Bool"):
        engine.execute(Operator.Cast, [u8], T.Bool)


def test_wrong_arity_and_operand_kinds(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    with pytest.raises(tfhe_py.TfheError, match="takes 2 operands, got 1"):
        engine.execute(Operator.Add, [u8])
    with pytest.raises(tfhe_py.TfheError, match="left operand must be a ciphertext"):
        engine.execute(Operator.Add, [b"\x01", u8])
    with pytest.raises(tfhe_py.TfheError, match="control must be a Bool"):
        engine.execute(Operator.IfThenElse, [u8, u8, u8])
    with pytest.raises(TypeError, match="Ciphertext or a big-endian plaintext"):
        engine.execute(Operator.Add, [u8, 3])  # type: ignore[list-item]
    with pytest.raises(tfhe_py.TfheError, match="at most 32 bytes"):
        engine.execute(Operator.Add, [u8, bytes(33)])


def test_unknown_opcode_and_type(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    with pytest.raises(tfhe_py.TfheError, match="unknown opcode 31"):
        engine.execute(31, [u8, u8])
    with pytest.raises(tfhe_py.TfheError, match="VerifyInput has no computation"):
        engine.execute(Operator.VerifyInput, [u8])
    # The retired types decompress and squash (inputs may hold them) but no operator makes them.
    with pytest.raises(tfhe_py.TfheError, match="cannot encrypt to Uint512"):
        engine.execute(Operator.TrivialEncrypt, [b"\x01"], 9)
    with pytest.raises(tfhe_py.TfheError, match="cannot encrypt to Uint4"):
        engine.trivial_encrypt(1, 1)
    with pytest.raises(tfhe_py.TfheError, match="unknown FHE type 12"):
        engine.trivial_encrypt(1, 12)


def test_rand_bounds(engine: tfhe_py.Engine) -> None:
    seed = bytes(16)
    with pytest.raises(tfhe_py.TfheError, match="power of two"):
        engine.execute(Operator.RandBounded, [seed, (3).to_bytes(1, "big")], T.Uint8)
    with pytest.raises(tfhe_py.TfheError, match="exceeds Uint8"):
        engine.execute(Operator.RandBounded, [seed, (1 << 9).to_bytes(2, "big")], T.Uint8)
    with pytest.raises(tfhe_py.TfheError, match="seed has 16 bytes"):
        engine.execute(Operator.Rand, [b"\x01" + bytes(16)], T.Uint8)
    with pytest.raises(tfhe_py.TfheError, match="FheRand: random values of Uint160 are not"):
        engine.execute(Operator.Rand, [seed], T.Uint160)
    with pytest.raises(tfhe_py.TfheError, match="FheRandBounded: random values of Uint160 are"):
        engine.execute(Operator.RandBounded, [seed, (2).to_bytes(1, "big")], T.Uint160)


def test_sum_limit(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, u8: tfhe_py.Ciphertext
) -> None:
    u64 = client_key.encrypt(7, T.Uint64)
    with pytest.raises(tfhe_py.TfheError, match="at most 100 Uint8 values, got 101"):
        engine.execute(Operator.Sum, [u8] * 101)
    with pytest.raises(tfhe_py.TfheError, match="at most 60 Uint64 values, got 61"):
        engine.execute(Operator.IsIn, [u64] * 62)
    # The same limits as the protocol table (the reference's check_fhe_operand_types).
    assert (tfhe_py.MAX_SUM_VALUES, tfhe_py.MAX_WIDE_VALUES) == (MAX_SUM_VALUES, MAX_WIDE_VALUES)


def test_encrypting_a_value_wider_than_the_type(client_key: tfhe_py.ClientKey) -> None:
    with pytest.raises(tfhe_py.TfheError, match="needs 9 bits"):
        client_key.encrypt(256, T.Uint8)
    with pytest.raises(tfhe_py.TfheError, match=r"\[0, 2\*\*256\)"):
        client_key.encrypt(-1, T.Uint8)


@pytest.mark.parametrize(
    "data", [b"", b"garbage", bytes(1000), b"\xff" * 64], ids=["empty", "text", "zeros", "ones"]
)
def test_garbage_bytes(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, data: bytes) -> None:
    with pytest.raises(tfhe_py.TfheError, match="not a serialized CompressedCiphertextList"):
        engine.decompress(data)
    with pytest.raises(tfhe_py.TfheError, match="not a serialized Uint8 ciphertext"):
        tfhe_py.Ciphertext.from_bytes(data, T.Uint8)
    with pytest.raises(tfhe_py.TfheError, match="CompressedSquashedNoiseCiphertextList"):
        client_key.decrypt_squashed(data, T.Uint8)
    with pytest.raises(tfhe_py.TfheError, match="not a serialized"):
        tfhe_py.ServerKey.from_bytes(data)


def test_truncated_stored_ciphertext(engine: tfhe_py.Engine, u8: tfhe_py.Ciphertext) -> None:
    stored = engine.compress(u8)
    for cut in (1, len(stored) // 2, len(stored) - 1):
        with pytest.raises(tfhe_py.TfheError, match="CompressedCiphertextList"):
            engine.decompress(stored[:cut])


def test_ciphertext_of_the_wrong_type_for_the_call(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, u8: tfhe_py.Ciphertext
) -> None:
    raw = u8.to_bytes()
    with pytest.raises(tfhe_py.TfheError, match="not a serialized Uint64 ciphertext"):
        tfhe_py.Ciphertext.from_bytes(raw, T.Uint64)
    squashed = engine.squash(u8)
    with pytest.raises(tfhe_py.TfheError, match="not a squashed Bool"):
        client_key.decrypt_squashed(squashed, T.Bool)
    # A raw ciphertext is not the stored format.
    with pytest.raises(tfhe_py.TfheError, match="CompressedCiphertextList"):
        engine.decompress(raw)


def test_oversized_input_is_refused_before_allocation(engine: tfhe_py.Engine) -> None:
    """A header claiming a huge length must hit the 16 MiB limit, not the allocator."""
    huge = (1 << 40).to_bytes(8, "little") * 8 + bytes(64)
    with pytest.raises(tfhe_py.TfheError):
        engine.decompress(huge)


def test_engine_without_public_key_cannot_rerandomize(
    keyset: KeySet, u8: tfhe_py.Ciphertext
) -> None:
    bare = tfhe_py.Engine(keyset.server_key)
    expected = "re-randomization needs the engine's compact public key"
    with pytest.raises(tfhe_py.TfheError, match=expected):
        bare.execute(Operator.Add, [u8, u8], rerandomize=True)
    with pytest.raises(tfhe_py.TfheError, match="needs the engine's CRS"):
        bare.verify_and_expand(b"", bytes(92))
