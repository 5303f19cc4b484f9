"""Training plumbing shared by the recipes (``recipes/train.py``, ``recipes/rl.py``).

    python -m pytest tests/training -q

* ``config``: typed config sections (``TrainConfig`` and the reusable ``OptimConfig``,
  ``LoraConfig``, ``LoggingConfig``).
* ``optim``: AdamW parameter groups and the linear-warm-up + cosine schedule.
* ``checkpoint``: ``CheckpointManager``: atomic checkpoints (save_pretrained model, optimiser,
  scheduler, per-process RNG, trainer state) and exact resume.
* ``logging``: ``MetricsLogger`` (metrics.jsonl, TensorBoard, W&B) and ``plot_loss_curve``.
* ``batches``: deterministic global-batch plan and collation (identical across process counts).
* ``objectives``: the ar / mdm / block objectives as prepare + loss over a micro-batch.

Importing this package imports nothing heavy; import the submodules you need.
"""
