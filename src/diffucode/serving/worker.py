"""The decoding worker: one thread that owns the model and decodes queued requests in batches.

    python -c "
    from diffucode.models import build_tiny_model
    from diffucode.sampling import GenerationConfig
    from diffucode.serving.worker import DecodeWorker, Job
    w = DecodeWorker(lambda: build_tiny_model()); w.start(); w.wait_ready()
    j = Job(rows=[[5, 6, 7]], suffix=None, config=GenerationConfig(max_new_tokens=8)); w.submit(j)
    print(j.wait()); w.stop()"

Why a thread: decoding is long, blocking torch work; the event loop of the HTTP server must stay
free to accept, validate and stream. Loading happens on the same thread, so the server answers
503 until the model is ready instead of not listening at all.

Starting a batch. The worker takes the oldest queued job, waits up to ``window_s`` for more
work, then takes every queued job whose settings are *compatible* with it, oldest first, up to
``max_batch_rows`` rows. Prompts of different lengths share a batch through left padding (the
engine's layout). Jobs that are not compatible wait for a later batch, in arrival order. The
queue is bounded (``max_queue`` jobs waiting): :meth:`DecodeWorker.submit` refuses more with a 429.

Continuous batching (``continuous=True``, the default, on block-causal and causal models): the
batch runs in a :class:`diffucode.sampling.BatchScheduler`, one block per step. Between two
steps, queued jobs compatible with the running batch join it (oldest first, while it has fewer
than ``max_batch_rows`` rows; the first incompatible job in the queue stops the joining, so it
is not starved: the batch drains and the next one starts with it), and each row leaves as soon
as its completion is done or ended, so a short request that arrives while a long one decodes is
answered before the long one ends. Compatible here: the same :class:`GenerationConfig` apart
from the seed and, with one token per step or a threshold rule, apart from ``max_tokens`` too
(each row keeps its own length). A job's rows may be decoded in different steps' batches; its
``batch_rows`` is the most rows its rows were decoded with.

Gather-then-decode (bidirectional models, i.e. infilling with a suffix and every MDM, and
``continuous=False``): compatible means the same config apart from the seed and the same suffix
length (the engine's canvas puts every row's suffix in the same columns); the batch is decoded by
one :func:`diffucode.sampling.generate` call and runs to its end before the next one starts.
A job is never split; a job larger than ``max_batch_rows`` runs alone.

Equal to one-by-one decoding. Each job brings the random generators it would get decoded
alone (:func:`diffucode.sampling.engine.row_generators` of its own seed and row count), and the
engine draws every random number per row, so a seeded or greedy request gives the same tokens
whether it is decoded alone or in any batch (the tests check this). Requests without a seed get
a random one.

A client that disconnects frees its queue slot if its job has not started; a running job
finishes and its result is dropped. A bad row (ids the engine refuses) fails its own job with a
400; an unexpected error in a gather-then-decode batch is narrowed down by decoding each job
alone, one in a continuous batch fails the jobs running in it with a 500.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from diffucode.serving.protocol import ApiError

log = logging.getLogger("diffucode.serve")


@dataclass
class Job:
    """One request's rows: ``rows`` are prompt ids per output row (a request with prompts p0, p1
    and ``n`` samples has rows p0 x n, p1 x n, as the engine orders them)."""

    rows: list[list[int]]
    suffix: list[int] | None
    config: Any  # GenerationConfig with num_return_sequences = 1; its seed seeds this job's rows
    on_step: Callable[[int, list[int]], None] | None = None  # (row in job, completion canvas) per step; worker thread
    on_finish: Callable[["Job"], None] | None = None  # called (worker thread) once result or error is set
    cancelled: bool = False
    # filled by the worker
    result: list[list[int]] | None = None  # [row][L] completion ids
    error: ApiError | None = None
    nfe: int = 0
    seconds: float = 0.0
    batch_rows: int = 0  # rows in the batch this job was decoded in
    submitted: float = field(default_factory=time.monotonic)
    _done: threading.Event = field(default_factory=threading.Event)
    _key: tuple | None = None
    # continuous batching: rows finished so far, and where the job's count of forwards/time starts
    _left: int = 0
    _nfe0: int = 0
    _t0: float = 0.0

    def key(self, any_length: bool = False) -> tuple:
        """Jobs with equal keys can share a batch. ``any_length``: rows of a continuous batch may
        have their own ``max_tokens`` when that does not change the step schedule."""
        cfg = dataclasses.replace(self.config, seed=None, num_return_sequences=1)
        free = any_length and (cfg.steps is None or not cfg.scheduled)
        fields = tuple((f.name, tuple(v) if isinstance(v := getattr(cfg, f.name), list) else v)
                       for f in dataclasses.fields(cfg) if not (free and f.name == "max_new_tokens"))
        return fields, len(self.suffix or ())

    def finish(self) -> None:
        self._done.set()
        if self.on_finish is not None:
            self.on_finish(self)

    def wait(self, timeout: float | None = None) -> list[list[int]]:
        """Block until decoded (for callers outside an event loop); raises the job's ApiError."""
        if not self._done.wait(timeout):
            raise TimeoutError("decoding did not finish in time")
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class DecodeWorker:
    """Owns the model on one thread; see the module docstring."""

    def __init__(self, load: Callable[[], tuple[Any, Any]], *, max_batch_rows: int = 16, window_s: float = 0.01,
                 max_queue: int = 64, continuous: bool = True):
        if max_batch_rows < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("max_batch_rows and max_queue must be >= 1 and window_s >= 0")
        self._load = load
        self.max_batch_rows, self.window_s, self.max_queue = max_batch_rows, window_s, max_queue
        self.continuous = continuous
        self._sched = None  # the running continuous batch (BatchScheduler), worker thread only
        self._sched_key: tuple | None = None
        self._owner: dict[int, tuple[Job, int]] = {}  # scheduler ticket -> (job, row in job)
        self._running: list[Job] = []  # jobs with rows in the running continuous batch
        self.model = self.tokenizer = None
        self.state = "loading"  # loading | ready | failed | stopped
        self.load_error: str | None = None
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="diffucode-decode", daemon=True)
        # joined: jobs that joined a continuous batch already decoding
        self.stats = {"batches": 0, "jobs": 0, "rows": 0, "max_batch_rows": 0, "errors": 0, "joined": 0}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "DecodeWorker":
        self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._ready.wait(timeout)
        return self.state == "ready"

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            if self.state in ("loading", "ready"):
                self.state = "stopping"
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            job.error = ApiError(503, "the server is shutting down", type="server_error", code="shutting_down")
            job.finish()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self.state = "stopped"

    def check_ready(self) -> None:
        """Raise the 503 a request gets while the model is loading, failed to load, or stopping."""
        if self.state == "ready":
            return
        if self.state == "loading":
            raise ApiError(503, "the model is still loading; retry shortly", type="server_error",
                           code="model_loading", headers={"Retry-After": "2"})
        raise ApiError(503, f"the server cannot decode ({self.state}" + (f": {self.load_error}" if self.load_error else "")
                       + ")", type="server_error", code="unavailable")

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a job (any thread). Raises ApiError 503 (not ready / stopping) or 429 (queue full)."""
        with self._cond:
            self.check_ready()
            if len(self._queue) >= self.max_queue:
                raise ApiError(429, f"the server is busy: {len(self._queue)} requests are queued (limit "
                                    f"{self.max_queue}); retry later", type="rate_limit_error",
                               code="queue_full", headers={"Retry-After": "1"})
            if job.config.stochastic and job.config.seed is None:
                job.config = dataclasses.replace(job.config, seed=secrets.randbits(62))
            job._key = job.key(any_length=self._continuous_for(job))
            job.submitted = time.monotonic()
            self._queue.append(job)
            self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """Drop a job that has not started (its client went away)."""
        with self._cond:
            job.cancelled = True
            try:
                self._queue.remove(job)
            except ValueError:
                pass

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.model, self.tokenizer = self._load()
            with self._cond:
                if self.state == "loading":
                    self.state = "ready"
        except Exception as e:  # noqa: BLE001 - reported by /health and every request
            log.exception("loading the model failed")
            self.load_error = f"{type(e).__name__}: {e}"
            self.state = "failed"
        finally:
            self._ready.set()
        while self.state == "ready":
            if self._sched is not None:
                self._continue()
                continue
            batch = self._next_batch()
            if not batch:
                continue
            if self._continuous_for(batch[0]) and self._start_continuous(batch):
                continue
            for group in _split(batch, lambda j: j.key()):  # equal lengths: one generate() call each
                self._decode(group)
        self._fail_running(ApiError(503, "the server is shutting down", type="server_error", code="shutting_down"))

    # -- continuous batching ---------------------------------------------------------------
    def _continuous_for(self, job: Job) -> bool:
        model = self.model
        return (self.continuous and model is not None and model.attention in ("block_causal", "causal")
                and not job.suffix)

    def _start_continuous(self, batch: list[Job]) -> bool:
        """Start a continuous batch with these jobs; False when the scheduler refuses the settings."""
        from diffucode.config import ConfigError
        from diffucode.sampling import BatchScheduler

        cfg = dataclasses.replace(batch[0].config, num_return_sequences=1, seed=None)
        try:
            self._sched = BatchScheduler(self.model, cfg, self.max_batch_rows)
        except ConfigError:
            return False  # settings it does not run: gather-then-decode
        self._sched_key = batch[0]._key
        self.stats["batches"] += 1
        for job in batch:
            self._join(job)
        return True

    def _join(self, job: Job) -> None:
        from diffucode.sampling.engine import row_generators

        sched = self._sched
        gens = row_generators(job.config, len(job.rows), self.model.device)  # the job's own streams
        job.result, job._left, job.batch_rows = [None] * len(job.rows), len(job.rows), 0  # type: ignore[list-item]
        job._nfe0, job._t0 = sched.nfe, time.perf_counter()
        tickets = []
        try:
            for k, ids in enumerate(job.rows):
                t = sched.submit(ids, None if gens is None else gens[k], max_new_tokens=job.config.max_new_tokens)
                tickets.append(t)
                self._owner[t] = (job, k)
        except Exception as e:  # noqa: BLE001 - a row the engine refuses fails its own job only
            gone = set(tickets)
            sched.queue = type(sched.queue)(q for q in sched.queue if q[0] not in gone)
            for t in tickets:
                self._owner.pop(t, None)
            self._fail(job, e)
            return
        self._running.append(job)

    def _continue(self) -> None:
        """Let compatible queued jobs join, decode one block, hand out the finished rows."""
        sched = self._sched
        joining = []
        with self._cond:
            while self._queue and self._queue[0]._key == self._sched_key:
                busy = sched.rows + len(sched.queue)
                if busy and busy + len(self._queue[0].rows) > self.max_batch_rows:
                    break
                joining.append(self._queue.popleft())
        for job in joining:
            self._join(job)
            self.stats["joined"] += 1
        sched.on_step = self._on_step if any(j.on_step is not None for j in self._running) else None
        try:
            finished = sched.step()
        except Exception as e:  # noqa: BLE001 - the server keeps serving
            log.exception("decoding failed")
            self._fail_running(_api_error(e))
            return
        rows = sched.rows + len(finished)
        self.stats["max_batch_rows"] = max(self.stats["max_batch_rows"], rows)
        for job in self._running:
            job.batch_rows = max(job.batch_rows, rows)
        for ticket, res in finished:
            job, k = self._owner.pop(ticket)
            job.result[k] = res.tokens.tolist()  # type: ignore[index]
            job._left -= 1
            if job._left == 0:
                self._running.remove(job)
                job.nfe, job.seconds = sched.nfe - job._nfe0, time.perf_counter() - job._t0
                self.stats["jobs"] += 1
                self.stats["rows"] += len(job.rows)
                job.finish()
        if not sched.busy:
            self._sched = self._sched_key = None

    def _on_step(self, tickets: list[int], canvases: list) -> None:
        for t, row in zip(tickets, canvases):
            job, k = self._owner[t]
            if job.on_step is not None and not job.cancelled:
                job.on_step(k, row.tolist())

    def _fail(self, job: Job, e: Exception) -> None:
        job.error = _api_error(e)
        self.stats["errors"] += 1
        job.finish()

    def _fail_running(self, error: ApiError) -> None:
        running, self._running = self._running, []
        self._sched = self._sched_key = None
        self._owner.clear()
        for job in running:
            self._fail(job, error)

    def _next_batch(self) -> list[Job]:
        with self._cond:
            while not self._queue and self.state == "ready":
                self._cond.wait(0.5)
            if not self._queue:
                return []
            deadline = self._queue[0].submitted + self.window_s
            while self.state == "ready":  # wait for companions, unless the batch is full already
                head = self._queue[0]
                rows = sum(len(j.rows) for j in self._queue if j._key == head._key)
                left = deadline - time.monotonic()
                if rows >= self.max_batch_rows or left <= 0:
                    break
                self._cond.wait(left)
            if not self._queue:
                return []
            head = self._queue[0]
            batch, rows = [], 0
            for job in list(self._queue):
                if job._key != head._key:
                    continue
                if batch and rows + len(job.rows) > self.max_batch_rows:
                    break
                batch.append(job)
                rows += len(job.rows)
            for job in batch:
                self._queue.remove(job)
            return batch

    def _decode(self, batch: list[Job]) -> None:
        try:
            self._decode_together(batch)
        except Exception as e:  # noqa: BLE001 - one bad request must not take the server down
            if len(batch) > 1:  # find out whose request it was: decode each alone
                for job in batch:
                    self._decode([job])
                return
            if _api_error(e).status >= 500:
                log.exception("decoding failed")
            self._fail(batch[0], e)

    def _decode_together(self, batch: list[Job]) -> None:
        import torch

        from diffucode.sampling import generate
        from diffucode.sampling.engine import row_generators

        model = self.model
        dev = model.device
        rows = [r for job in batch for r in job.rows]
        P = max(len(r) for r in rows)
        fill = model.pad_token_id if model.pad_token_id is not None else 0
        ids = torch.tensor([[fill] * (P - len(r)) + r for r in rows], dtype=torch.long, device=dev)  # [B, P]
        mask = torch.tensor([[0] * (P - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=dev)  # [B, P]
        suffix = None
        if batch[0].suffix:
            suffix = torch.tensor([job.suffix for job in batch for _ in job.rows], dtype=torch.long, device=dev)
        cfg = dataclasses.replace(batch[0].config, num_return_sequences=1)
        gens = None
        if cfg.stochastic:
            gens = [g for job in batch for g in row_generators(job.config, len(job.rows), dev)]
        owner = [(job, k) for job in batch for k in range(len(job.rows))]
        streaming = any(job.on_step is not None for job in batch)

        def on_step(active: torch.Tensor, canvas: torch.Tensor) -> None:
            picked = [(i, r) for i, r in enumerate(active.tolist()) if owner[r][0].on_step is not None]
            if not picked:
                return
            sub = canvas[[i for i, _ in picked]].tolist()
            for (_, r), row in zip(picked, sub):
                job, k = owner[r]
                if not job.cancelled:
                    job.on_step(k, row)

        t0 = time.perf_counter()
        out = generate(model, ids, mask, cfg, suffix_ids=suffix, generators=gens,
                       on_step=on_step if streaming else None)
        seconds = time.perf_counter() - t0
        comp = out.completions.tolist()  # [B, L]
        self.stats["batches"] += 1
        self.stats["rows"] += len(rows)
        self.stats["jobs"] += len(batch)
        self.stats["max_batch_rows"] = max(self.stats["max_batch_rows"], len(rows))
        start = 0
        for job in batch:
            job.result = comp[start:start + len(job.rows)]
            job.nfe, job.seconds, job.batch_rows = int(out.nfe), seconds, len(rows)
            start += len(job.rows)
            job.finish()


def _split(jobs: list[Job], key) -> list[list[Job]]:
    """Jobs grouped by ``key(job)``, groups in order of their first job."""
    groups: dict = {}
    for job in jobs:
        groups.setdefault(key(job), []).append(job)
    return list(groups.values())


def _api_error(e: Exception) -> ApiError:
    from diffucode.config import ConfigError

    if isinstance(e, ApiError):
        return e
    if isinstance(e, (ConfigError, ValueError)):
        return ApiError(400, str(e), code="invalid_value")
    return ApiError(500, f"decoding failed: {type(e).__name__}: {e}", type="server_error", code="internal_error")
