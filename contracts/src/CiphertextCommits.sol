// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {CoprocessorSet} from "./CoprocessorSet.sol";

/**
 * @title  CiphertextCommits (local gateway)
 * @notice Coprocessors commit the digests of each allowed ciphertext (ct64 and its noise-squashed
 *         ct128); consensus is reached when `threshold` coprocessors commit the same digests.
 *         Decryption services read the agreed material from here.
 * @dev    External ABI of the Zama gateway CiphertextCommits for the calls, events and views the
 *         coprocessor uses; no proxy, no pausing.
 */
contract CiphertextCommits is CoprocessorSet {
    struct CiphertextMaterial {
        bytes32 ctHandle;
        uint256 keyId;
        bytes32 ciphertextDigest;
        bytes32 snsCiphertextDigest;
        address[] coprocessorTxSenderAddresses;
    }

    error CoprocessorAlreadyAdded(bytes32 ctHandle, address txSender);
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

    mapping(bytes32 ctHandle => mapping(address txSender => bool)) private _alreadyAdded;
    mapping(bytes32 ctHandle => mapping(bytes32 materialHash => address[])) private _senders;
    mapping(bytes32 ctHandle => bool) private _isAdded;
    mapping(bytes32 ctHandle => CiphertextMaterial) private _materials;
    mapping(bytes32 ctHandle => bytes32 materialHash) private _consensusHash;

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
        if (_alreadyAdded[ctHandle][msg.sender]) revert CoprocessorAlreadyAdded(ctHandle, msg.sender);
        _alreadyAdded[ctHandle][msg.sender] = true;

        bytes32 materialHash = keccak256(abi.encode(keyId, ciphertextDigest, snsCiphertextDigest));
        address[] storage agreeing = _senders[ctHandle][materialHash];
        agreeing.push(msg.sender);
        emit AddCiphertextMaterial(ctHandle, keyId, ciphertextDigest, snsCiphertextDigest, msg.sender);

        if (!_isAdded[ctHandle] && agreeing.length >= getThreshold()) {
            _isAdded[ctHandle] = true;
            _consensusHash[ctHandle] = materialHash;
            _materials[ctHandle] = CiphertextMaterial(
                ctHandle,
                keyId,
                ciphertextDigest,
                snsCiphertextDigest,
                agreeing
            );
            emit AddCiphertextMaterialConsensus(ctHandle, keyId, ciphertextDigest, snsCiphertextDigest, agreeing);
        } else if (_isAdded[ctHandle] && _consensusHash[ctHandle] == materialHash) {
            // A late coprocessor that agrees is recorded with the consensus.
            _materials[ctHandle].coprocessorTxSenderAddresses.push(msg.sender);
        }
    }

    function isCiphertextMaterialAdded(bytes32 ctHandle) external view returns (bool) {
        return _isAdded[ctHandle];
    }

    function hasCoprocessorAdded(bytes32 ctHandle, address txSender) external view returns (bool) {
        return _alreadyAdded[ctHandle][txSender];
    }

    /// @notice The agreed material of each handle; reverts CiphertextMaterialNotFound for one without consensus.
    function getCiphertextMaterials(
        bytes32[] calldata ctHandles
    ) external view returns (CiphertextMaterial[] memory materials) {
        materials = new CiphertextMaterial[](ctHandles.length);
        for (uint256 i = 0; i < ctHandles.length; i++) {
            if (!_isAdded[ctHandles[i]]) revert CiphertextMaterialNotFound(ctHandles[i]);
            materials[i] = _materials[ctHandles[i]];
        }
    }
}
