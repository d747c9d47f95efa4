// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {CoprocessorSet} from "./CoprocessorSet.sol";
import {CiphertextMaterial, SnsCiphertextMaterial} from "./GatewayStructs.sol";

/**
 * @title  CiphertextCommits (local gateway)
 * @notice Coprocessors commit the digests of each allowed ciphertext (ct64 and its noise-squashed
 *         ct128); consensus is reached when `threshold` coprocessors commit the same key id and
 *         digests. Decryption services (the KMS) read the agreed material from here.
 * @dev    The external ABI is that of the Zama gateway CiphertextCommits (v0.14.0,
 *         `ICiphertextCommits.sol`): `addCiphertextMaterial`, its two events, the errors, the
 *         structs `CiphertextMaterial` / `SnsCiphertextMaterial` and the views
 *         `isCiphertextMaterialAdded`, `getCiphertextMaterials`, `getSnsCiphertextMaterials`,
 *         `getAddCiphertextMaterialConsensusTxSenders`, `getVersion`. No proxy, no host-chain
 *         registry, no priority coprocessor.
 */
contract CiphertextCommits is CoprocessorSet {
    /// @dev The reference version whose ABI this contract has.
    string private constant VERSION = "CiphertextCommits v0.5.0";

    error CoprocessorAlreadyAdded(bytes32 ctHandle, address txSender);
    error EmptyCtHandles();
    error CiphertextMaterialNotFound(bytes32 ctHandle);

    event AddCiphertextMaterial(
        bytes32 indexed ctHandle,
        uint256 keyId,
        bytes32 ciphertextDigest,
        bytes32 snsCiphertextDigest,
        address coprocessorTxSender
    );
    event AddCiphertextMaterialConsensus(
        bytes32 indexed ctHandle,
        uint256 keyId,
        bytes32 ciphertextDigest,
        bytes32 snsCiphertextDigest,
        address[] coprocessorTxSenders
    );

    /// @dev What coprocessors agree on for one handle.
    struct Agreed {
        uint256 keyId;
        bytes32 ciphertextDigest;
        bytes32 snsCiphertextDigest;
    }

    mapping(bytes32 ctHandle => mapping(address txSender => bool)) private _addedBy;
    // Commits are grouped by what they say (key id and both digests): only equal commits agree.
    // Senders that agree after consensus join the group, so the getters list them too.
    mapping(bytes32 ctHandle => mapping(bytes32 commitHash => address[])) private _sendersOf;
    mapping(bytes32 ctHandle => bytes32 commitHash) private _agreedHash;
    mapping(bytes32 ctHandle => Agreed) private _agreed;
    mapping(bytes32 ctHandle => bool) private _isAdded;

    constructor(
        address[] memory signers,
        address[] memory txSenders,
        uint256 threshold_
    ) CoprocessorSet(signers, txSenders, threshold_) {}

    /// @notice Commits the digests of `ctHandle`'s ct64 (`ciphertextDigest`) and ct128 (`snsCiphertextDigest`).
    function addCiphertextMaterial(
        bytes32 ctHandle,
        uint256 keyId,
        bytes32 ciphertextDigest,
        bytes32 snsCiphertextDigest
    ) external onlyCoprocessorTxSender {
        if (_addedBy[ctHandle][msg.sender]) revert CoprocessorAlreadyAdded(ctHandle, msg.sender);
        _addedBy[ctHandle][msg.sender] = true;

        bytes32 commitHash = keccak256(abi.encode(keyId, ciphertextDigest, snsCiphertextDigest));
        address[] storage agreeing = _sendersOf[ctHandle][commitHash];
        agreeing.push(msg.sender);
        emit AddCiphertextMaterial(ctHandle, keyId, ciphertextDigest, snsCiphertextDigest, msg.sender);

        if (!_isAdded[ctHandle] && agreeing.length >= getCoprocessorMajorityThreshold()) {
            _isAdded[ctHandle] = true;
            _agreedHash[ctHandle] = commitHash;
            _agreed[ctHandle] = Agreed(keyId, ciphertextDigest, snsCiphertextDigest);
            emit AddCiphertextMaterialConsensus(ctHandle, keyId, ciphertextDigest, snsCiphertextDigest, agreeing);
        }
    }

    function isCiphertextMaterialAdded(bytes32 ctHandle) public view returns (bool) {
        return _isAdded[ctHandle];
    }

    /// @notice The agreed ct64 material of each handle; reverts `CiphertextMaterialNotFound` for one
    ///         without consensus and `EmptyCtHandles` for an empty list.
    function getCiphertextMaterials(
        bytes32[] calldata ctHandles
    ) external view returns (CiphertextMaterial[] memory ctMaterials) {
        if (ctHandles.length == 0) revert EmptyCtHandles();
        ctMaterials = new CiphertextMaterial[](ctHandles.length);
        for (uint256 i = 0; i < ctHandles.length; i++) {
            bytes32 handle = ctHandles[i];
            Agreed storage agreed = _found(handle);
            ctMaterials[i] = CiphertextMaterial(handle, agreed.keyId, agreed.ciphertextDigest, _consensusSenders(handle));
        }
    }

    /// @notice The agreed ct128 (noise-squashed) material of each handle; same reverts.
    function getSnsCiphertextMaterials(
        bytes32[] calldata ctHandles
    ) external view returns (SnsCiphertextMaterial[] memory snsCtMaterials) {
        if (ctHandles.length == 0) revert EmptyCtHandles();
        snsCtMaterials = new SnsCiphertextMaterial[](ctHandles.length);
        for (uint256 i = 0; i < ctHandles.length; i++) {
            bytes32 handle = ctHandles[i];
            Agreed storage agreed = _found(handle);
            snsCtMaterials[i] = SnsCiphertextMaterial(
                handle,
                agreed.keyId,
                agreed.snsCiphertextDigest,
                _consensusSenders(handle)
            );
        }
    }

    /// @notice Tx senders of the coprocessors that committed the agreed material (empty before consensus).
    function getAddCiphertextMaterialConsensusTxSenders(bytes32 ctHandle) external view returns (address[] memory) {
        return _consensusSenders(ctHandle);
    }

    function getVersion() external pure returns (string memory) {
        return VERSION;
    }

    function _found(bytes32 ctHandle) private view returns (Agreed storage) {
        if (!_isAdded[ctHandle]) revert CiphertextMaterialNotFound(ctHandle);
        return _agreed[ctHandle];
    }

    function _consensusSenders(bytes32 ctHandle) private view returns (address[] memory) {
        if (!_isAdded[ctHandle]) return new address[](0);
        return _sendersOf[ctHandle][_agreedHash[ctHandle]];
    }
}
