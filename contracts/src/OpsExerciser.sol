// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {FHE, ebool, euint8, euint16, euint32, euint64, euint128, euint256, eaddress} from "@fhevm/solidity/lib/FHE.sol";
import {CoprocessorConfig, Impl} from "@fhevm/solidity/lib/Impl.sol";
import {FheType} from "@fhevm/solidity/lib/FheType.sol";
import {CustomChainConfig} from "./CustomChainConfig.sol";

/**
 * @title  OpsExerciser
 * @notice Test contract that makes the host FHEVMExecutor emit every operator it offers
 *         (host-contracts 0.10.0: opcodes 0..27, no Sum/IsIn/MulDiv) on any supported type, from
 *         plaintext operands encrypted on chain with FHE.asEbool/asEuintXX/asEaddress. Every result
 *         is allowed to this contract (FHE.allowThis), so each one is an allowed result the
 *         coprocessor must compute and store.
 * @dev    Operators are dispatched on the raw handle through the fhEVM `Impl` library, which is what
 *         the typed FHE.* functions call, so one code path serves all types and the contract stays
 *         under the code-size limit. Callers choose the operators of a transaction with a bit mask
 *         (bit i = FHEVMExecutor opcode i) to stay under the HCU limit per transaction. The host
 *         contracts' addresses are a constructor argument, so it deploys on any chain id.
 */
contract OpsExerciser is CustomChainConfig {
    // FHEVMExecutor.Operators of host-contracts 0.10.0.
    uint8 private constant OP_DIV = 3;
    uint8 private constant OP_REM = 4;
    uint8 private constant LAST_BINARY_OP = 19;

    /// @notice Rhs variants of binaryOps.
    uint8 public constant VARIANT_ENCRYPTED = 1;
    uint8 public constant VARIANT_SCALAR = 2;

    error UnsupportedExerciserType(uint8 fheType);
    error UnsupportedBinaryOp(uint8 op);

    /// @notice One exercise call: its kind (binary, unary, select, cast, rand, stored) and its results.
    event Exercised(uint8 indexed fheType, string kind, bytes32[] results);

    euint64 private _stored;

    /// @param config the host contracts of this chain (any chain id: see CustomChainConfig).
    constructor(CoprocessorConfig memory config) CustomChainConfig(config) {}

    /**
     * @notice Binary operators `opMask` on `fheType` operands `a` and `b`, with an encrypted rhs and/or
     *         a scalar rhs (`variants`: 1 encrypted, 2 scalar, 3 both). Div and Rem are scalar only,
     *         with a zero divisor replaced by 1.
     */
    function binaryOps(
        uint8 fheType,
        uint256 a,
        uint256 b,
        uint32 opMask,
        uint8 variants
    ) external returns (bytes32[] memory results) {
        bytes32 ea = _encrypt(fheType, a);
        bytes32 eb = (variants & VARIANT_ENCRYPTED) != 0 ? _encrypt(fheType, b) : bytes32(0);
        uint256 scalar = fheType == uint8(FheType.Bool) ? (b != 0 ? 1 : 0) : b;
        results = new bytes32[](64);
        uint256 n;
        for (uint8 op = 0; op <= LAST_BINARY_OP; op++) {
            if ((opMask >> op) & 1 == 0) continue;
            bool divLike = op == OP_DIV || op == OP_REM;
            if ((variants & VARIANT_ENCRYPTED) != 0 && !divLike) {
                results[n++] = _allowed(_binary(op, ea, eb, false));
            }
            if ((variants & VARIANT_SCALAR) != 0) {
                uint256 s = (divLike && scalar == 0) ? 1 : scalar;
                results[n++] = _allowed(_binary(op, ea, bytes32(s), true));
            }
        }
        _finish(fheType, "binary", results, n);
    }

    /// @notice Neg (not on Bool) and Not of `fheType` operand `a`.
    function unaryOps(uint8 fheType, uint256 a) external returns (bytes32[] memory results) {
        bytes32 ea = _encrypt(fheType, a);
        results = new bytes32[](2);
        uint256 n;
        if (fheType != uint8(FheType.Bool)) results[n++] = _allowed(Impl.neg(ea));
        results[n++] = _allowed(Impl.not(ea));
        _finish(fheType, "unary", results, n);
    }

    /// @notice IfThenElse (FHE.select) between `fheType` operands `a` and `b`.
    function selectOp(uint8 fheType, bool control, uint256 a, uint256 b) external returns (bytes32[] memory results) {
        bytes32 c = ebool.unwrap(FHE.asEbool(control));
        results = new bytes32[](1);
        results[0] = _allowed(Impl.select(c, _encrypt(fheType, a), _encrypt(fheType, b)));
        _finish(fheType, "select", results, 1);
    }

    /// @notice Casts of `fromType` operand `a` to each of `toTypes`.
    function castOps(uint8 fromType, uint256 a, uint8[] calldata toTypes) external returns (bytes32[] memory results) {
        bytes32 ea = _encrypt(fromType, a);
        results = new bytes32[](toTypes.length);
        for (uint256 i = 0; i < toTypes.length; i++) {
            results[i] = _allowed(Impl.cast(ea, FheType(toTypes[i])));
        }
        _finish(fromType, "cast", results, toTypes.length);
    }

    /// @notice Trivial encryptions of `value` to each of `toTypes` (also emitted by every other call).
    function trivialOps(uint256 value, uint8[] calldata toTypes) external returns (bytes32[] memory results) {
        results = new bytes32[](toTypes.length);
        for (uint256 i = 0; i < toTypes.length; i++) {
            results[i] = _allowed(_encrypt(toTypes[i], value));
        }
        _finish(type(uint8).max, "trivial", results, toTypes.length);
    }

    /// @notice Rand of `fheType`, and RandBounded with `upperBound` (a power of two) when it is not 0.
    function randOps(uint8 fheType, uint256 upperBound) external returns (bytes32[] memory results) {
        results = new bytes32[](2);
        uint256 n;
        results[n++] = _allowed(Impl.rand(FheType(fheType)));
        if (upperBound != 0) results[n++] = _allowed(Impl.randBounded(upperBound, FheType(fheType)));
        _finish(fheType, "rand", results, n);
    }

    /// @notice Stateful: adds `value` to the stored encrypted accumulator (an earlier transaction's result).
    function accumulate(uint64 value) external returns (bytes32 result) {
        euint64 updated = FHE.add(_stored, FHE.asEuint64(value));
        _stored = updated;
        FHE.allowThis(updated);
        result = euint64.unwrap(updated);
        _emitOne(uint8(FheType.Uint64), "stored", result);
    }

    /// @notice Stateful: scales the stored accumulator and wraps it under `cap`, using only stored state.
    function scaleStored(uint64 factor, uint64 cap) external returns (bytes32 result) {
        euint64 scaled = FHE.mul(_stored, factor);
        ebool over = FHE.gt(scaled, cap);
        euint64 updated = FHE.select(over, FHE.rem(scaled, cap == 0 ? 1 : cap), scaled);
        _stored = updated;
        FHE.allowThis(updated);
        result = euint64.unwrap(updated);
        _emitOne(uint8(FheType.Uint64), "stored", result);
    }

    function storedHandle() external view returns (bytes32) {
        return euint64.unwrap(_stored);
    }

    function _encrypt(uint8 fheType, uint256 value) private returns (bytes32) {
        if (fheType == uint8(FheType.Bool)) return ebool.unwrap(FHE.asEbool(value != 0));
        if (fheType == uint8(FheType.Uint8)) return euint8.unwrap(FHE.asEuint8(uint8(value)));
        if (fheType == uint8(FheType.Uint16)) return euint16.unwrap(FHE.asEuint16(uint16(value)));
        if (fheType == uint8(FheType.Uint32)) return euint32.unwrap(FHE.asEuint32(uint32(value)));
        if (fheType == uint8(FheType.Uint64)) return euint64.unwrap(FHE.asEuint64(uint64(value)));
        if (fheType == uint8(FheType.Uint128)) return euint128.unwrap(FHE.asEuint128(uint128(value)));
        if (fheType == uint8(FheType.Uint160)) return eaddress.unwrap(FHE.asEaddress(address(uint160(value))));
        if (fheType == uint8(FheType.Uint256)) return euint256.unwrap(FHE.asEuint256(value));
        revert UnsupportedExerciserType(fheType);
    }

    function _binary(uint8 op, bytes32 lhs, bytes32 rhs, bool scalar) private returns (bytes32) {
        if (op == 0) return Impl.add(lhs, rhs, scalar);
        if (op == 1) return Impl.sub(lhs, rhs, scalar);
        if (op == 2) return Impl.mul(lhs, rhs, scalar);
        if (op == 3) return Impl.div(lhs, rhs);
        if (op == 4) return Impl.rem(lhs, rhs);
        if (op == 5) return Impl.and(lhs, rhs, scalar);
        if (op == 6) return Impl.or(lhs, rhs, scalar);
        if (op == 7) return Impl.xor(lhs, rhs, scalar);
        if (op == 8) return Impl.shl(lhs, rhs, scalar);
        if (op == 9) return Impl.shr(lhs, rhs, scalar);
        if (op == 10) return Impl.rotl(lhs, rhs, scalar);
        if (op == 11) return Impl.rotr(lhs, rhs, scalar);
        if (op == 12) return Impl.eq(lhs, rhs, scalar);
        if (op == 13) return Impl.ne(lhs, rhs, scalar);
        if (op == 14) return Impl.ge(lhs, rhs, scalar);
        if (op == 15) return Impl.gt(lhs, rhs, scalar);
        if (op == 16) return Impl.le(lhs, rhs, scalar);
        if (op == 17) return Impl.lt(lhs, rhs, scalar);
        if (op == 18) return Impl.min(lhs, rhs, scalar);
        if (op == 19) return Impl.max(lhs, rhs, scalar);
        revert UnsupportedBinaryOp(op);
    }

    function _allowed(bytes32 handle) private returns (bytes32) {
        Impl.allow(handle, address(this));
        return handle;
    }

    function _finish(uint8 fheType, string memory kind, bytes32[] memory results, uint256 n) private {
        assembly {
            mstore(results, n)
        }
        emit Exercised(fheType, kind, results);
    }

    function _emitOne(uint8 fheType, string memory kind, bytes32 handle) private {
        bytes32[] memory results = new bytes32[](1);
        results[0] = handle;
        emit Exercised(fheType, kind, results);
    }
}
