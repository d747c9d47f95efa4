"""JSON ABIs (package data) of @fhevm/host-contracts and of our contracts.

Written by `node contracts/build.mjs`; each file is {"contractName", "source", "abi"}.
"""
