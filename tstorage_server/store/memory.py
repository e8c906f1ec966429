"""A Store that keeps blocks in memory: for tests and throw-away servers."""

from __future__ import annotations

from tstorage_client.block import RecordBlock
from tstorage_server.store.base import BlockMeta, BlockReader, BlockStore, StoredColumns


class _MemoryReader(BlockReader):
    def __init__(self, blocks: dict[int, RecordBlock]) -> None:
        self._blocks = blocks

    def columns(self, meta: BlockMeta) -> StoredColumns:
        block = self._blocks[meta.block_id]
        return StoredColumns(block.keys, block.payload, block.offsets)


class MemoryStore(BlockStore):
    """Same semantics as the durable store, nothing written to disk."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[int, RecordBlock] = {}

    def _persist(self, entries: list[tuple[BlockMeta, RecordBlock]], clock_floor: int) -> None:
        for meta, block in entries:
            # Own the bytes: the caller's buffers may be reused after the request.
            self._blocks[meta.block_id] = RecordBlock(
                block.keys.copy(), block.offsets.copy(), bytes(block.payload)
            )

    def _reader(self) -> BlockReader:
        return _MemoryReader(self._blocks)

    def _replace(self, old: list[BlockMeta], new: list[tuple[BlockMeta, RecordBlock]]) -> None:
        # Copy on write: open snapshots keep the mapping they started with.
        blocks = {k: v for k, v in self._blocks.items() if k not in {m.block_id for m in old}}
        for meta, block in new:
            blocks[meta.block_id] = RecordBlock(
                block.keys.copy(), block.offsets.copy(), bytes(block.payload)
            )
        self._blocks = blocks
