// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {FHE} from "@fhevm/solidity/lib/FHE.sol";
import {CoprocessorConfig, Impl} from "@fhevm/solidity/lib/Impl.sol";
import {ZamaConfig} from "@fhevm/solidity/config/ZamaConfig.sol";

/**
 * @title  CustomChainConfig
 * @notice What a dApp on a chain that `@fhevm/solidity`'s ZamaConfig does not know inherits instead of
 *         ZamaEthereumConfig: the host contracts' addresses (ACL, FHEVMExecutor as CoprocessorAddress,
 *         KMSVerifier) come from the deployer, so the same bytecode runs on any chain id. Handles
 *         still bind to the chain: the executor derives them with `block.chainid`.
 */
abstract contract CustomChainConfig {
    constructor(CoprocessorConfig memory config) {
        FHE.setCoprocessor(config);
    }

    /// @notice The ACL, executor and KMSVerifier addresses this contract calls.
    function coprocessorConfig() external view returns (CoprocessorConfig memory config) {
        CoprocessorConfig storage $ = Impl.getCoprocessorConfig();
        config = CoprocessorConfig($.ACLAddress, $.CoprocessorAddress, $.KMSVerifierAddress);
    }

    /// @notice ZamaConfig's protocol id of this chain (0 on a chain it does not know).
    function confidentialProtocolId() public view returns (uint256) {
        return ZamaConfig.getConfidentialProtocolId();
    }
}
