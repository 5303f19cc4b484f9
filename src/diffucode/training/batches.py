"""Deterministic batching: which rows each process trains on at each step, and collating them.

    python -c "from diffucode.training.batches import BatchPlan; p = BatchPlan(10, 4, 2, 1, 0, 0); print(p.micro_positions(0, 0), p.micro_positions(0, 1))"

The data stream is an infinite sequence of *positions* 0, 1, 2, ...; position ``p`` is row
``perm_e[p % N]`` of epoch ``e = p // N`` (a seeded permutation per epoch). Optimiser step ``s``
consumes positions ``[s*G, (s+1)*G)`` of the global batch ``G``; process ``r`` takes the ``r``-th
contiguous share and cuts it into ``accum`` micro-batches. The position doubles as the sample
id that seeds the row's noise, so the data and the corruption of a step are the same for any
number of processes / accumulation steps, and resuming needs only the step number.
"""

from __future__ import annotations

import torch

from diffucode.data.packing import PackedRows
from diffucode.data.sft import SFTExample, collate_sft
from diffucode.diffusion import schedules as S


class BatchPlan:
    """Maps (step, micro-batch index) to data-stream positions for one process."""

    def __init__(self, n_rows: int, global_batch: int, micro_batch: int, world_size: int, rank: int, seed: int,
                 shuffle: bool = True):
        if n_rows < 1:
            raise ValueError("the training data is empty (no rows after tokenising/packing)")
        per_process = global_batch // world_size
        if global_batch % world_size or per_process % micro_batch:
            raise ValueError(
                f"batch_size ({global_batch}) must be a multiple of micro_batch_size ({micro_batch}) x "
                f"number of processes ({world_size})"
            )
        self.n_rows, self.global_batch, self.micro_batch = n_rows, global_batch, micro_batch
        self.world_size, self.rank, self.seed, self.shuffle = world_size, rank, seed, shuffle
        self.accum = per_process // micro_batch
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if self.shuffle:
                self._perms[epoch] = torch.randperm(self.n_rows, generator=S.seeded_generator(self.seed, epoch, 0x5EED))
            else:
                self._perms[epoch] = torch.arange(self.n_rows)
            if len(self._perms) > 4:  # keep memory flat over long runs
                self._perms.pop(min(self._perms))
        return self._perms[epoch]

    def row(self, position: int) -> int:
        return int(self._perm(position // self.n_rows)[position % self.n_rows])

    def micro_positions(self, step: int, micro_index: int) -> list[int]:
        per_process = self.global_batch // self.world_size
        start = step * self.global_batch + self.rank * per_process + micro_index * self.micro_batch
        return list(range(start, start + self.micro_batch))

    def epoch(self, step: int) -> float:
        return step * self.global_batch / self.n_rows


class PackedSource:
    """Pre-training rows (already packed to ``max_seq_len``)."""

    def __init__(self, rows: PackedRows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def collate(self, indices: list[int], sample_ids: list[int], device=None) -> dict[str, torch.Tensor]:
        idx = torch.tensor(indices, dtype=torch.long)
        batch = {
            "input_ids": self.rows.input_ids[idx],  # [b, L]
            "attention_mask": self.rows.attention_mask[idx],  # [b, L]
            "sample_ids": torch.tensor(sample_ids, dtype=torch.long),  # [b]
        }
        return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


class SFTSource:
    """SFT examples, collated per micro-batch (see ``data.sft.collate_sft``).

    With ``pad_mode="random_eos"`` the number of EOS of a row (1..max_eos) is drawn from the row's
    sample id, so it is reproducible across processes and resumes.
    """

    def __init__(self, examples: list[SFTExample], max_seq_len: int, eos_id: int, pad_id: int, pad_mode: str,
                 fill_id: int | None, max_eos: int, seed: int, pad_to_multiple: int = 1):
        self.examples = examples
        self.max_seq_len, self.eos_id, self.pad_id, self.pad_mode = max_seq_len, eos_id, pad_id, pad_mode
        self.fill_id, self.max_eos, self.seed, self.pad_to_multiple = fill_id, max_eos, seed, pad_to_multiple

    def __len__(self) -> int:
        return len(self.examples)

    def collate(self, indices: list[int], sample_ids: list[int], device=None) -> dict[str, torch.Tensor]:
        u = S.row_uniform(self.seed, sample_ids, 1, S.STREAM_SFT_EOS)[:, 0]
        n_eos = (1 + (u * self.max_eos).floor().long()).clamp(max=self.max_eos).tolist()
        batch = collate_sft([self.examples[i] for i in indices], self.max_seq_len, self.eos_id, self.pad_id,
                            self.pad_mode, self.fill_id, n_eos, self.pad_to_multiple)
        batch["sample_ids"] = torch.tensor(sample_ids, dtype=torch.long)
        return {k: v.to(device) for k, v in batch.items()} if device is not None else batch
