// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

/**
 * @title  CoprocessorSet
 * @notice The registered coprocessors of the local gateway: each one is a (signer, tx sender) pair,
 *         fixed at deployment, with a consensus threshold. Shared by InputVerification and
 *         CiphertextCommits so both gateway contracts agree on who may answer.
 */
abstract contract CoprocessorSet {
    error EmptyCoprocessorSet();
    error CoprocessorSetLengthMismatch(uint256 signers, uint256 txSenders);
    error InvalidThreshold(uint256 threshold, uint256 coprocessors);
    error NullCoprocessorAddress();
    error DuplicateCoprocessorAddress(address account);
    /// @notice msg.sender is not the tx sender of a registered coprocessor.
    error NotCoprocessorTxSender(address sender);

    address[] private _signers;
    address[] private _txSenders;
    mapping(address txSender => address signer) private _signerOfTxSender;
    mapping(address signer => bool) private _isSigner;
    uint256 private immutable _threshold;

    constructor(address[] memory signers, address[] memory txSenders, uint256 threshold_) {
        if (signers.length == 0) revert EmptyCoprocessorSet();
        if (signers.length != txSenders.length) {
            revert CoprocessorSetLengthMismatch(signers.length, txSenders.length);
        }
        if (threshold_ == 0 || threshold_ > signers.length) revert InvalidThreshold(threshold_, signers.length);
        for (uint256 i = 0; i < signers.length; i++) {
            address signer = signers[i];
            address txSender = txSenders[i];
            if (signer == address(0) || txSender == address(0)) revert NullCoprocessorAddress();
            if (_isSigner[signer]) revert DuplicateCoprocessorAddress(signer);
            if (_signerOfTxSender[txSender] != address(0)) revert DuplicateCoprocessorAddress(txSender);
            _isSigner[signer] = true;
            _signerOfTxSender[txSender] = signer;
        }
        _signers = signers;
        _txSenders = txSenders;
        _threshold = threshold_;
    }

    modifier onlyCoprocessorTxSender() {
        if (_signerOfTxSender[msg.sender] == address(0)) revert NotCoprocessorTxSender(msg.sender);
        _;
    }

    function getCoprocessorSigners() external view returns (address[] memory) {
        return _signers;
    }

    function getCoprocessorTxSenders() external view returns (address[] memory) {
        return _txSenders;
    }

    /// @notice Number of agreeing coprocessors needed for consensus.
    function getThreshold() public view returns (uint256) {
        return _threshold;
    }

    function isCoprocessorSigner(address account) public view returns (bool) {
        return _isSigner[account];
    }

    /// @notice The signer registered with a tx sender (zero when not registered).
    function signerOfTxSender(address txSender) public view returns (address) {
        return _signerOfTxSender[txSender];
    }
}
