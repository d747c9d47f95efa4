// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {CoprocessorSet} from "./CoprocessorSet.sol";

/**
 * @title  InputVerification (local gateway)
 * @notice Users ask for the verification of an encrypted input (ciphertext list + ZK proof);
 *         coprocessors verify it off-chain and answer with an EIP-712 signature over
 *         `CiphertextVerification` (the very structure the host InputVerifier checks), or reject it.
 *         Consensus is reached when `threshold` coprocessors sign the same handles.
 * @dev    External ABI of the Zama gateway InputVerification for the calls and events the
 *         coprocessor uses; no proxy, no pausing, no payment.
 */
contract InputVerification is CoprocessorSet {
    struct CiphertextVerification {
        bytes32[] ctHandles;
        address userAddress;
        address contractAddress;
        uint256 contractChainId;
        bytes extraData;
    }

    struct ProofRequest {
        uint256 contractChainId;
        address contractAddress;
        address userAddress;
    }

    string public constant EIP712_INPUT_VERIFICATION_TYPE =
        "CiphertextVerification(bytes32[] ctHandles,address userAddress,address contractAddress,uint256 contractChainId,bytes extraData)";
    bytes32 public constant EIP712_INPUT_VERIFICATION_TYPEHASH = keccak256(bytes(EIP712_INPUT_VERIFICATION_TYPE));
    bytes32 private constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    string public constant EIP712_NAME = "InputVerification";
    string public constant EIP712_VERSION = "1";

    error VerifyProofNotRequested(uint256 zkProofId);
    error CoprocessorAlreadyVerified(uint256 zkProofId, address txSender);
    error CoprocessorAlreadyRejected(uint256 zkProofId, address txSender);
    error InvalidSignatureLength(uint256 length);
    error InvalidSignature();
    error NotCoprocessorSigner(address signer);
    error CoprocessorSignerDoesNotMatchTxSender(address signer, address txSender);

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
    event RejectProofResponseCall(uint256 indexed zkProofId, address coprocessorTxSender, bytes extraData);
    event RejectProofResponse(uint256 indexed zkProofId);

    uint256 private _zkProofIdCounter;
    mapping(uint256 zkProofId => ProofRequest) private _requests;
    mapping(uint256 zkProofId => mapping(address txSender => bool)) private _alreadyVerified;
    mapping(uint256 zkProofId => mapping(address txSender => bool)) private _alreadyRejected;
    mapping(uint256 zkProofId => mapping(bytes32 digest => bytes[])) private _signatures;
    mapping(uint256 zkProofId => uint256) private _rejections;
    mapping(uint256 zkProofId => bool) private _verified;
    mapping(uint256 zkProofId => bool) private _rejected;

    constructor(
        address[] memory signers,
        address[] memory txSenders,
        uint256 threshold_
    ) CoprocessorSet(signers, txSenders, threshold_) {}

    /// @notice Asks the coprocessors to verify `ciphertextWithZKProof` for `userAddress` on `contractAddress`.
    function verifyProofRequest(
        uint256 contractChainId,
        address contractAddress,
        address userAddress,
        bytes calldata ciphertextWithZKProof,
        bytes calldata extraData
    ) external returns (uint256 zkProofId) {
        zkProofId = ++_zkProofIdCounter;
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
        ProofRequest memory request = _checkAnswerable(zkProofId);
        bytes32 digest = hashCiphertextVerification(
            CiphertextVerification(
                ctHandles,
                request.userAddress,
                request.contractAddress,
                request.contractChainId,
                extraData
            )
        );
        address signer = _recover(digest, signature);
        if (!isCoprocessorSigner(signer)) revert NotCoprocessorSigner(signer);
        if (signerOfTxSender(msg.sender) != signer) revert CoprocessorSignerDoesNotMatchTxSender(signer, msg.sender);

        _alreadyVerified[zkProofId][msg.sender] = true;
        bytes[] storage agreeing = _signatures[zkProofId][digest];
        agreeing.push(signature);
        emit VerifyProofResponseCall(zkProofId, ctHandles, signature, msg.sender, extraData);

        if (!_verified[zkProofId] && agreeing.length >= getThreshold()) {
            _verified[zkProofId] = true;
            emit VerifyProofResponse(zkProofId, ctHandles, agreeing);
        }
    }

    /// @notice A coprocessor's refusal: the proof or the ciphertext list is invalid.
    function rejectProofResponse(uint256 zkProofId, bytes calldata extraData) external onlyCoprocessorTxSender {
        _checkAnswerable(zkProofId);
        _alreadyRejected[zkProofId][msg.sender] = true;
        uint256 rejections = ++_rejections[zkProofId];
        emit RejectProofResponseCall(zkProofId, msg.sender, extraData);
        if (!_rejected[zkProofId] && rejections >= getThreshold()) {
            _rejected[zkProofId] = true;
            emit RejectProofResponse(zkProofId);
        }
    }

    function getZkProofIdCounter() external view returns (uint256) {
        return _zkProofIdCounter;
    }

    function getProofRequest(uint256 zkProofId) external view returns (ProofRequest memory) {
        return _requests[zkProofId];
    }

    function isProofVerified(uint256 zkProofId) external view returns (bool) {
        return _verified[zkProofId];
    }

    function isProofRejected(uint256 zkProofId) external view returns (bool) {
        return _rejected[zkProofId];
    }

    function isCoprocessorVerified(uint256 zkProofId, address txSender) external view returns (bool) {
        return _alreadyVerified[zkProofId][txSender];
    }

    function isCoprocessorRejected(uint256 zkProofId, address txSender) external view returns (bool) {
        return _alreadyRejected[zkProofId][txSender];
    }

    function domainSeparator() public view returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    EIP712_DOMAIN_TYPEHASH,
                    keccak256(bytes(EIP712_NAME)),
                    keccak256(bytes(EIP712_VERSION)),
                    block.chainid,
                    address(this)
                )
            );
    }

    /// @notice The EIP-712 digest a coprocessor signs (same encoding as the host InputVerifier).
    function hashCiphertextVerification(CiphertextVerification memory ctVerif) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                EIP712_INPUT_VERIFICATION_TYPEHASH,
                keccak256(abi.encodePacked(ctVerif.ctHandles)),
                ctVerif.userAddress,
                ctVerif.contractAddress,
                ctVerif.contractChainId,
                keccak256(ctVerif.extraData)
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _checkAnswerable(uint256 zkProofId) private view returns (ProofRequest memory request) {
        if (zkProofId == 0 || zkProofId > _zkProofIdCounter) revert VerifyProofNotRequested(zkProofId);
        if (_alreadyVerified[zkProofId][msg.sender]) revert CoprocessorAlreadyVerified(zkProofId, msg.sender);
        if (_alreadyRejected[zkProofId][msg.sender]) revert CoprocessorAlreadyRejected(zkProofId, msg.sender);
        request = _requests[zkProofId];
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignatureLength(signature.length);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        // Reject malleable signatures (upper half s), as OpenZeppelin ECDSA does.
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) revert InvalidSignature();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
    }
}
