"""Pure fhEVM protocol facts: types, operators, handles, event decoding (no Dagster, no web3)."""
