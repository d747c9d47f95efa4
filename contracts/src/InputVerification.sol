// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {CoprocessorSet} from "./CoprocessorSet.sol";

/**
 * @title  InputVerification (local gateway)
 * @notice Users ask for the verification of an encrypted input (ciphertext list + ZK proof);
 *         coprocessors verify it off-chain and answer with an EIP-712 signature over
 *         `CiphertextVerification` (the very structure the host InputVerifier checks), or reject it.
 *         Consensus is reached when `threshold` coprocessors sign the same handles (or reject).
 * @dev    The external ABI is that of the Zama gateway InputVerification (v0.14.0,
 *         `IInputVerification.sol`) for everything a coprocessor or a user touches: the calls, the
 *         events, the errors (with their argument lists), the views `isProofVerified`,
 *         `isProofRejected`, `get{Verify,Reject}ProofConsensusTxSenders`, `getVersion` and the
 *         ERC-5267 `eip712Domain`. A coprocessor counts as one signer: once its signer has verified
 *         or rejected a proof, neither answer is accepted again from it. No proxy, no pausing, no
 *         payment, no host-chain registry, no priority coprocessor.
 */
contract InputVerification is CoprocessorSet {
    /// @dev What a coprocessor signs (EIP-712); the host InputVerifier checks the same structure.
    struct CiphertextVerification {
        bytes32[] ctHandles;
        address userAddress;
        address contractAddress;
        uint256 contractChainId;
        bytes extraData;
    }

    /// @dev The parts of a request that the signed answer binds.
    struct ProofRequest {
        uint256 contractChainId;
        address contractAddress;
        address userAddress;
    }

    bytes32 private constant CIPHERTEXT_VERIFICATION_TYPEHASH =
        keccak256(
            "CiphertextVerification(bytes32[] ctHandles,address userAddress,address contractAddress,uint256 contractChainId,bytes extraData)"
        );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    string private constant DOMAIN_NAME = "InputVerification";
    string private constant DOMAIN_VERSION = "1";
    /// @dev The reference version whose ABI this contract has.
    string private constant VERSION = "InputVerification v0.5.0";
    /// @dev secp256k1 order / 2: a larger `s` is the malleable twin of a valid signature.
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    error CoprocessorAlreadyVerified(uint256 zkProofId, address txSender, address signer);
    error CoprocessorAlreadyRejected(uint256 zkProofId, address txSender, address signer);
    error VerifyProofNotRequested(uint256 zkProofId);
    // Signature errors, as OpenZeppelin's ECDSA (which the reference uses) raises them.
    error ECDSAInvalidSignature();
    error ECDSAInvalidSignatureLength(uint256 length);
    error ECDSAInvalidSignatureS(bytes32 s);

    event VerifyProofRequest(
        uint256 indexed zkProofId,
        uint256 indexed contractChainId,
        address contractAddress,
        address userAddress,
        bytes ciphertextWithZKProof,
        bytes extraData
    );
    /// @notice One coprocessor's accepted answer.
    event VerifyProofResponseCall(
        uint256 indexed zkProofId,
        bytes32[] ctHandles,
        bytes signature,
        address coprocessorTxSender,
        bytes extraData
    );
    /// @notice Consensus: `threshold` coprocessors signed these handles; `signatures` go into the inputProof.
    event VerifyProofResponse(uint256 indexed zkProofId, bytes32[] ctHandles, bytes[] signatures);
    /// @notice One coprocessor's refusal (the sender is the transaction's, as on the reference).
    event RejectProofResponseCall(uint256 indexed zkProofId, bytes extraData);
    /// @notice Consensus: `threshold` coprocessors rejected the proof.
    event RejectProofResponse(uint256 indexed zkProofId);

    uint256 private _lastZkProofId;
    mapping(uint256 zkProofId => ProofRequest) private _requests;
    // Who answered, by signer: one answer per coprocessor and proof.
    mapping(uint256 zkProofId => mapping(address signer => bool)) private _verifiedBy;
    mapping(uint256 zkProofId => mapping(address signer => bool)) private _rejectedBy;
    // Verifications are grouped by the EIP-712 digest they signed: only equal answers agree.
    mapping(uint256 zkProofId => mapping(bytes32 digest => bytes[])) private _signaturesOf;
    mapping(uint256 zkProofId => mapping(bytes32 digest => address[])) private _verifiersOf;
    mapping(uint256 zkProofId => bytes32 digest) private _agreedDigest;
    mapping(uint256 zkProofId => address[]) private _rejecters;
    mapping(uint256 zkProofId => bool) private _isVerified;
    mapping(uint256 zkProofId => bool) private _isRejected;

    constructor(
        address[] memory signers,
        address[] memory txSenders,
        uint256 threshold_
    ) CoprocessorSet(signers, txSenders, threshold_) {}

    /// @notice Asks the coprocessors to verify `ciphertextWithZKProof` for `userAddress` on `contractAddress`.
    /// @dev The id is only in the event, as on the reference (which returns nothing).
    function verifyProofRequest(
        uint256 contractChainId,
        address contractAddress,
        address userAddress,
        bytes calldata ciphertextWithZKProof,
        bytes calldata extraData
    ) external {
        uint256 zkProofId = ++_lastZkProofId;
        _requests[zkProofId] = ProofRequest(contractChainId, contractAddress, userAddress);
        emit VerifyProofRequest(
            zkProofId,
            contractChainId,
            contractAddress,
            userAddress,
            ciphertextWithZKProof,
            extraData
        );
    }

    /// @notice A coprocessor's signed answer: the handles of the verified and expanded input list.
    function verifyProofResponse(
        uint256 zkProofId,
        bytes32[] calldata ctHandles,
        bytes calldata signature,
        bytes calldata extraData
    ) external onlyCoprocessorTxSender {
        ProofRequest memory request = _requested(zkProofId);
        bytes32 digest = _digest(
            CiphertextVerification(
                ctHandles,
                request.userAddress,
                request.contractAddress,
                request.contractChainId,
                extraData
            )
        );
        address signer = _recover(digest, signature);
        _checkSignerMatchesTxSender(signer, msg.sender);
        _checkNotAnswered(zkProofId, signer);

        _verifiedBy[zkProofId][signer] = true;
        bytes[] storage signatures = _signaturesOf[zkProofId][digest];
        signatures.push(signature);
        _verifiersOf[zkProofId][digest].push(msg.sender);
        emit VerifyProofResponseCall(zkProofId, ctHandles, signature, msg.sender, extraData);

        // A proof is decided once, either way; later agreeing answers are recorded, not re-announced.
        if (_undecided(zkProofId) && signatures.length >= getCoprocessorMajorityThreshold()) {
            _isVerified[zkProofId] = true;
            _agreedDigest[zkProofId] = digest;
            emit VerifyProofResponse(zkProofId, ctHandles, signatures);
        }
    }

    /// @notice A coprocessor's refusal: the proof or the ciphertext list is invalid.
    function rejectProofResponse(uint256 zkProofId, bytes calldata extraData) external onlyCoprocessorTxSender {
        _requested(zkProofId);
        address signer = _signerOf(msg.sender);
        _checkNotAnswered(zkProofId, signer);

        _rejectedBy[zkProofId][signer] = true;
        address[] storage rejecters = _rejecters[zkProofId];
        rejecters.push(msg.sender);
        emit RejectProofResponseCall(zkProofId, extraData);

        if (_undecided(zkProofId) && rejecters.length >= getCoprocessorMajorityThreshold()) {
            _isRejected[zkProofId] = true;
            emit RejectProofResponse(zkProofId);
        }
    }

    function isProofVerified(uint256 zkProofId) external view returns (bool) {
        return _isVerified[zkProofId];
    }

    function isProofRejected(uint256 zkProofId) external view returns (bool) {
        return _isRejected[zkProofId];
    }

    /// @notice Tx senders of the coprocessors whose signatures make the verification (empty before it).
    function getVerifyProofConsensusTxSenders(uint256 zkProofId) external view returns (address[] memory) {
        if (!_isVerified[zkProofId]) return new address[](0);
        return _verifiersOf[zkProofId][_agreedDigest[zkProofId]];
    }

    /// @notice Tx senders of the coprocessors that rejected the proof.
    function getRejectProofConsensusTxSenders(uint256 zkProofId) external view returns (address[] memory) {
        return _rejecters[zkProofId];
    }

    function getVersion() external pure returns (string memory) {
        return VERSION;
    }

    /// @notice ERC-5267: the EIP-712 domain coprocessors sign under (name, version, chain id, this contract).
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", DOMAIN_NAME, DOMAIN_VERSION, block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    function _requested(uint256 zkProofId) private view returns (ProofRequest memory) {
        if (zkProofId == 0 || zkProofId > _lastZkProofId) revert VerifyProofNotRequested(zkProofId);
        return _requests[zkProofId];
    }

    function _checkNotAnswered(uint256 zkProofId, address signer) private view {
        if (_verifiedBy[zkProofId][signer]) revert CoprocessorAlreadyVerified(zkProofId, msg.sender, signer);
        if (_rejectedBy[zkProofId][signer]) revert CoprocessorAlreadyRejected(zkProofId, msg.sender, signer);
    }

    function _undecided(uint256 zkProofId) private view returns (bool) {
        return !_isVerified[zkProofId] && !_isRejected[zkProofId];
    }

    /// @dev The EIP-712 digest of `ctVerif` under this contract's domain (as the host InputVerifier hashes it).
    function _digest(CiphertextVerification memory ctVerif) private view returns (bytes32) {
        bytes32 domainSeparator = keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256(bytes(DOMAIN_NAME)),
                keccak256(bytes(DOMAIN_VERSION)),
                block.chainid,
                address(this)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                CIPHERTEXT_VERIFICATION_TYPEHASH,
                keccak256(abi.encodePacked(ctVerif.ctHandles)),
                ctVerif.userAddress,
                ctVerif.contractAddress,
                ctVerif.contractChainId,
                keccak256(ctVerif.extraData)
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) revert ECDSAInvalidSignatureLength(signature.length);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER) revert ECDSAInvalidSignatureS(s);
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert ECDSAInvalidSignature();
    }
}
