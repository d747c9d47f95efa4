// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

/**
 * @notice The agreed ct64 material of one handle, as `CiphertextCommits.getCiphertextMaterials`
 *         returns it: the handle, the key it was computed under, the digest of the ct64 and the
 *         transaction senders of the coprocessors that agreed on it.
 * @dev    File-level struct with the very field list of the Zama gateway (v0.14.0
 *         `shared/Structs.sol`), so the ABI tuple (bytes32,uint256,bytes32,address[]) is the same.
 */
struct CiphertextMaterial {
    bytes32 ctHandle;
    uint256 keyId;
    bytes32 ciphertextDigest;
    address[] coprocessorTxSenderAddresses;
}

/**
 * @notice The same for the noise-squashed ct128 ("switch and squash"): what a KMS reads through
 *         `CiphertextCommits.getSnsCiphertextMaterials`.
 */
struct SnsCiphertextMaterial {
    bytes32 ctHandle;
    uint256 keyId;
    bytes32 snsCiphertextDigest;
    address[] coprocessorTxSenderAddresses;
}
