// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

/**
 * @title  CoprocessorSet
 * @notice The registered coprocessors of the local gateway: each one is a (signer, tx sender) pair,
 *         fixed at deployment, with a consensus threshold. Shared by InputVerification and
 *         CiphertextCommits so both gateway contracts agree on who may answer.
 * @dev    On the Zama gateway this set lives in a separate GatewayConfig contract. The errors a
 *         coprocessor can meet while answering (`NotCoprocessorTxSender`, `NotCoprocessorSigner`,
 *         `CoprocessorSignerDoesNotMatchTxSender`, `HostChainNotRegistered`, `HostChainDisabled`)
 *         are declared here with the reference's signatures and parameter names, so that they are
 *         part of both contracts' ABIs exactly as on the real gateway. The views are named like
 *         GatewayConfig's.
 */
abstract contract CoprocessorSet {
    // Deployment errors, named like GatewayConfig's where it has one.
    error EmptyCoprocessors();
    error CoprocessorSetLengthMismatch(uint256 signers, uint256 txSenders);
    error InvalidNullCoprocessorThreshold();
    error InvalidHighCoprocessorThreshold(uint256 coprocessorThreshold, uint256 nCoprocessors);
    error NullCoprocessorAddress();
    error CoprocessorTxSenderAlreadyRegistered(address coprocessorTxSenderAddress);
    error CoprocessorSignerAlreadyRegistered(address coprocessorSignerAddress);

    /// @notice msg.sender is not the tx sender of a registered coprocessor.
    error NotCoprocessorTxSender(address txSenderAddress);
    /// @notice A recovered signature is not from a registered coprocessor signer.
    error NotCoprocessorSigner(address signerAddress);
    /// @notice The signer is registered, but paired with another tx sender.
    error CoprocessorSignerDoesNotMatchTxSender(address signerAddress, address txSenderAddress);
    /// @notice Raised by the Zama gateway for a chain id it does not serve. The local gateway serves
    ///         every chain and never raises it; it is declared so that a coprocessor built on this
    ///         ABI decodes it.
    error HostChainNotRegistered(uint256 chainId);
    /// @notice Raised by the Zama gateway for a host chain its owner disabled (never raised here).
    error HostChainDisabled(uint256 chainId);

    address[] private _signers;
    address[] private _txSenders;
    mapping(address txSender => address signer) private _signerOfTxSender;
    mapping(address signer => bool) private _isSigner;
    uint256 private immutable _threshold;

    constructor(address[] memory signers, address[] memory txSenders, uint256 threshold_) {
        if (signers.length == 0) revert EmptyCoprocessors();
        if (signers.length != txSenders.length) {
            revert CoprocessorSetLengthMismatch(signers.length, txSenders.length);
        }
        if (threshold_ == 0) revert InvalidNullCoprocessorThreshold();
        if (threshold_ > signers.length) revert InvalidHighCoprocessorThreshold(threshold_, signers.length);
        for (uint256 i = 0; i < signers.length; i++) {
            address signer = signers[i];
            address txSender = txSenders[i];
            if (signer == address(0) || txSender == address(0)) revert NullCoprocessorAddress();
            if (_isSigner[signer]) revert CoprocessorSignerAlreadyRegistered(signer);
            if (_signerOfTxSender[txSender] != address(0)) revert CoprocessorTxSenderAlreadyRegistered(txSender);
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
    function getCoprocessorMajorityThreshold() public view returns (uint256) {
        return _threshold;
    }

    function isCoprocessorSigner(address signerAddress) public view returns (bool) {
        return _isSigner[signerAddress];
    }

    function isCoprocessorTxSender(address txSenderAddress) public view returns (bool) {
        return _signerOfTxSender[txSenderAddress] != address(0);
    }

    /// @notice The signer registered with a tx sender (zero when not registered).
    function _signerOf(address txSender) internal view returns (address) {
        return _signerOfTxSender[txSender];
    }

    /// @notice Reverts unless `signer` is a coprocessor signer paired with `txSender`.
    function _checkSignerMatchesTxSender(address signer, address txSender) internal view {
        if (!_isSigner[signer]) revert NotCoprocessorSigner(signer);
        if (_signerOfTxSender[txSender] != signer) revert CoprocessorSignerDoesNotMatchTxSender(signer, txSender);
    }
}
