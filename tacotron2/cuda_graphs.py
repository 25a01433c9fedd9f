"""Free-running Tacotron 2 decoding through CUDA graphs: one graph replay per chunk of decoder steps.

At batch 1 an eager decoder step is a few dozen small kernels whose launch cost, not the GPU's work,
sets the speed (~0.57 ms a step on an H200). A graph launches a whole chunk (gate_check_interval
steps) at once; between chunks the host reads the "all stopped?" flag, as the eager path does.

Graphs replay fixed shapes on fixed addresses. So the encoder memory is zero-padded to a multiple
of TOKEN_BUCKET tokens (the attention masks the padding, so every real output is unchanged) and the
buffers of each (batch, bucket, precision, weights) live with their graphs in a small cache. The
decoder's own chunk code (Decoder.decode_chunk) is what gets captured; the CPU tests run it eagerly.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor

TOKEN_BUCKET = 32
MAX_CACHED = 4  # (batch, token bucket, ...) shapes kept captured per decoder

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
           decoder.gate_threshold, decoder.prenet.dropout, decoder.training,  # baked into the captured steps
           tuple(p.data_ptr() for p in decoder.parameters()))
    captured_shapes = _cache.setdefault(decoder, OrderedDict())
    captured = captured_shapes.pop(key, None) or _Captured(decoder, memory, memory_lengths)
    captured_shapes[key] = captured
    while len(captured_shapes) > MAX_CACHED:
        captured_shapes.popitem(last=False)

    captured.load(decoder, memory, memory_lengths)
    return decoder.run_chunks(captured.buffers, lambda n_steps: captured.graphs[n_steps].replay())
