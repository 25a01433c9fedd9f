"""Tacotron 2's decoder loop through CUDA graphs: free running (one replay per chunk of steps) and
teacher-forced training (one forward and one backward replay per batch).

At batch 1 an eager decoder step is a few dozen small kernels whose launch cost, not the GPU's work,
sets the speed (~0.57 ms a step on an H200). A graph launches a whole chunk (gate_check_interval
steps) at once; between chunks the host reads the "all stopped?" flag, as the eager path does.

Graphs replay fixed shapes on fixed addresses. So the encoder memory is zero-padded to a multiple
of TOKEN_BUCKET tokens (the attention masks the padding, so every real output is unchanged) and the
buffers of each (batch, bucket, precision, weights) live with their graphs in a small cache. The
decoder's own chunk code (Decoder.decode_chunk) is what gets captured; the CPU tests run it eagerly.

Training (train.py --cuda-graphs) has the same launch-bound loop, forward and backward, once per
frame. Each batch is zero-padded to a bucket of (tokens: multiple of TOKEN_BUCKET, frames: multiple
of FRAME_BUCKET) and the loop of that bucket runs as a graphed callable
(torch.cuda.make_graphed_callables); the outputs are cut back to the batch's own length. That is
exact: the decoder is causal (frame t sees frames < t only), so frames past the batch's length
change no earlier output, and the attention masks the padded tokens. Every bucket's graphs share
one memory pool; each new bucket costs a capture (a few eager steps' time) once per run.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.timing import note_one_time_work

TOKEN_BUCKET = 32
FRAME_BUCKET = 64
MAX_CACHED = 4  # (batch, token bucket, ...) shapes kept captured per decoder for free running

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Captured:
    """The fixed buffers of one shape and a graph per chunk length (the last chunk may be shorter)."""

    def __init__(self, decoder, memory: Tensor, memory_lengths: Tensor):
        # own copies: load() overwrites the fixed buffers for every later batch of this shape
        self.buffers = decoder.free_run_buffers(memory.clone(), memory_lengths.clone(),
                                                decoder.gate_check_interval)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        for n_steps in sorted(set(decoder.chunk_sizes()), reverse=True):
            self.graphs[n_steps] = self._capture(decoder, n_steps)

    def _capture(self, decoder, n_steps: int) -> torch.cuda.CUDAGraph:
        # Warm-up on a side stream first (library handles, workspaces), as graph capture requires.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), _autocast_without_cache():
            decoder.decode_chunk(self.buffers, n_steps)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        pool = next(iter(self.graphs.values())).pool() if self.graphs else None  # chunks never overlap
        with torch.cuda.graph(graph, pool=pool), _autocast_without_cache():
            decoder.decode_chunk(self.buffers, n_steps)
        return graph

    def load(self, decoder, memory: Tensor, memory_lengths: Tensor) -> None:
        """Copy a new utterance batch (and a fresh decoder state) into the fixed buffers."""
        fresh = decoder.free_run_buffers(memory, memory_lengths, 0)
        for name in ("memory", "processed_memory", "location_weight", "projection_weight", "projection_bias",
                     "pad_mask", "frame", "not_finished"):
            getattr(self.buffers, name).copy_(getattr(fresh, name))
        for fixed, value in zip(self.buffers.state, fresh.state):
            fixed.copy_(value)


def _autocast_without_cache():
    # Autocast's cast cache would keep tensors of the graph's private pool alive outside it.
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"),
                          enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False)


def pad_tokens(memory: Tensor, bucket: int = TOKEN_BUCKET) -> Tensor:
    """Zero-pad memory [B, N, E] to a multiple of ``bucket`` tokens."""
    return F.pad(memory, (0, 0, 0, -memory.size(1) % bucket))


def graphed_free_run(decoder, memory: Tensor, memory_lengths: Tensor) -> tuple[list, Tensor, Tensor]:
    """Decoder.free_run's contract, each chunk one graph replay (alignments keep the padded tokens)."""
    memory = pad_tokens(memory)
    memory_lengths = memory_lengths.to(memory.device)
    key = (tuple(memory.shape), memory.dtype, torch.is_autocast_enabled("cuda"),
           torch.get_autocast_dtype("cuda"), decoder.max_decoder_steps, decoder.gate_check_interval,
           decoder.gate_threshold, decoder.prenet.dropout, decoder.training, decoder.torch_compile,  # baked in
           tuple(p.data_ptr() for p in decoder.parameters()))
    captured_shapes = _cache.setdefault(decoder, OrderedDict())
    captured = captured_shapes.pop(key, None) or _Captured(decoder, memory, memory_lengths)
    captured_shapes[key] = captured
    while len(captured_shapes) > MAX_CACHED:
        captured_shapes.popitem(last=False)

    captured.load(decoder, memory, memory_lengths)
    return decoder.run_chunks(captured.buffers, lambda n_steps: captured.graphs[n_steps].replay())


def pad_frames(mels: Tensor, bucket: int = FRAME_BUCKET) -> Tensor:
    """Zero-pad mels [B, n_mel, T] to a multiple of ``bucket`` frames."""
    return F.pad(mels, (0, -mels.size(2) % bucket))


class TeacherForcing(nn.Module):
    """The decoder's teacher-forced loop as a module of its own: make_graphed_callables replaces the
    forward of what it is given, and every bucket needs its own graphs of the same parameters."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, memory: Tensor, mels: Tensor, memory_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.decoder.teacher_forcing(memory, mels, memory_lengths)


def bucketed_teacher_forcing(run, memory: Tensor, mels: Tensor, memory_lengths: Tensor):
    """``run`` (a teacher-forced decoder) on the batch padded to its bucket, outputs cut back."""
    n_tokens, n_frames = memory.size(1), mels.size(2)
    mel_outputs, gate_outputs, alignments = run(pad_tokens(memory), pad_frames(mels), memory_lengths)
    return mel_outputs[:, :, :n_frames], gate_outputs[:, :n_frames], alignments[:, :n_frames, :n_tokens]


def graphed_teacher_forcing(decoder, memory: Tensor, mels: Tensor, memory_lengths: Tensor):
    """Decoder.teacher_forcing's contract; forward and backward replay the graphs of the bucket.

    The graphs live on the decoder (memory pool, {bucket key: graphed teacher forcing}): they hold
    the decoder through TeacherForcing, so a cache keyed weakly by the decoder would never let it go.
    Every bucket is kept (training sees a bounded set of them); each holds its static outputs and
    its parameter gradients (~0.2 GB for the recipe's decoder at batch 104), activations share the pool."""
    buckets = getattr(decoder, "_graphed_buckets", None)
    if buckets is None:
        buckets = decoder._graphed_buckets = (torch.cuda.graph_pool_handle(), {})
    pool, graphed = buckets

    def run(memory: Tensor, mels: Tensor, memory_lengths: Tensor):
        key = (tuple(memory.shape), tuple(mels.shape), memory.dtype, mels.dtype, memory.requires_grad,
               torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"),
               decoder.prenet.dropout, decoder.p_attention_dropout, decoder.p_decoder_dropout,
               tuple(p.data_ptr() for p in decoder.parameters()))  # .to()/.half() give new storage
        if key not in graphed:
            # static inputs of the bucket's shape; the lengths are real ones (no all-masked row)
            sample = (torch.zeros_like(memory).requires_grad_(memory.requires_grad), torch.zeros_like(mels),
                      memory_lengths.clone())
            graphed[key] = torch.cuda.make_graphed_callables(TeacherForcing(decoder), sample, pool=pool)
            note_one_time_work()  # train.py reports this step's time apart from the throughput
        return graphed[key](memory, mels, memory_lengths)

    return bucketed_teacher_forcing(run, memory, mels, memory_lengths)
