"""The coprocessor's steps as plain functions over the store, the engine and the chain client.

No Dagster here and no web3: each step takes what it needs (the store's methods it calls, as the
port its `RangeJob` is typed with; an engine; a chain reader or sender behind a small interface),
does its work idempotently and returns a report whose `figures()` the Dagster layer shows. The
store is the only channel between steps.
"""
