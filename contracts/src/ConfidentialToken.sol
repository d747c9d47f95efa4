// SPDX-License-Identifier: BSD-3-Clause-Clear
pragma solidity ^0.8.24;

import {FHE, euint64, externalEuint64, ebool} from "@fhevm/solidity/lib/FHE.sol";
import {CoprocessorConfig} from "@fhevm/solidity/lib/Impl.sol";
import {CustomChainConfig} from "./CustomChainConfig.sol";

/**
 * @title  ConfidentialToken
 * @notice Demo token with encrypted balances on the real fhEVM library: the traffic generator of the
 *         local devnet. A transfer whose amount exceeds the sender's balance moves 0 and does not
 *         revert (the balance check happens under encryption). Deployable on any host chain: the
 *         host contracts' addresses are a constructor argument (CustomChainConfig).
 */
contract ConfidentialToken is CustomChainConfig {
    error NotOwner(address sender);

    event Transfer(address indexed from, address indexed to);
    event Mint(address indexed to, uint64 amount);

    address public immutable owner;
    mapping(address account => euint64) private _balances;

    constructor(CoprocessorConfig memory config) CustomChainConfig(config) {
        owner = msg.sender;
    }

    /// @notice Owner only: adds a trivially encrypted `amount` to `to`'s balance.
    function mint(address to, uint64 amount) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        euint64 newBalance = FHE.add(_balances[to], FHE.asEuint64(amount));
        _balances[to] = newBalance;
        FHE.allowThis(newBalance);
        FHE.allow(newBalance, to);
        emit Mint(to, amount);
    }

    /// @notice Transfers an encrypted amount, verified by the host InputVerifier against the gateway's signatures.
    function transfer(address to, externalEuint64 encryptedAmount, bytes calldata inputProof) external {
        _transfer(msg.sender, to, FHE.fromExternal(encryptedAmount, inputProof));
    }

    /// @notice Same logic with a plaintext amount made encrypted on chain (demo traffic without the gateway).
    function transferAmount(address to, uint64 amount) external {
        _transfer(msg.sender, to, FHE.asEuint64(amount));
    }

    function balanceOf(address account) external view returns (euint64) {
        return _balances[account];
    }

    function _transfer(address from, address to, euint64 amount) private {
        ebool canPay = FHE.ge(_balances[from], amount);
        euint64 moved = FHE.select(canPay, amount, FHE.asEuint64(0));
        euint64 newFrom = FHE.sub(_balances[from], moved);
        _balances[from] = newFrom;
        euint64 newTo = FHE.add(_balances[to], moved);
        _balances[to] = newTo;
        FHE.allowThis(newFrom);
        FHE.allow(newFrom, from);
        FHE.allowThis(newTo);
        FHE.allow(newTo, to);
        emit Transfer(from, to);
    }
}
