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
one memory pool; each new bucket costs a capture once per run (4-5 eager steps' time: 5-13 s at
batch 128 on an H200) and keeps GPU memory, so buckets are captured only while memory allows; a
batch of a bucket left out replays a larger captured one that covers it, or runs eagerly.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.timing import note_one_time_work
from tacotron2.model import TOKEN_BUCKET, pad_tokens

FRAME_BUCKET = 64
MAX_CACHED = 4  # (batch, token bucket, ...) shapes kept captured per decoder for free running
# A capture's growth is its pool blocks plus an eager step's worth (its warm-up); after the last capture
# the batches it leaves to eager steps need that eager step's room, and later buckets may be longer.
CAPTURE_HEADROOM = 2.0

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
                     "pad_mask", "prenet_hidden", "not_finished"):
            getattr(self.buffers, name).copy_(getattr(fresh, name))
        for fixed, value in zip(self.buffers.state, fresh.state):
            fixed.copy_(value)
        for fixed_cell, cell in zip(self.buffers.cells or (), fresh.cells or ()):
            for fixed, value in zip(fixed_cell, cell):
                fixed.copy_(value)


def _autocast_without_cache():
    # Autocast's cast cache would keep tensors of the graph's private pool alive outside it.
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"),
                          enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False)


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


class TeacherForcing(nn.Module):
    """The decoder's teacher-forced loop as a module of its own: make_graphed_callables replaces the
    forward of what it is given, and every bucket needs its own graphs of the same parameters."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, memory: Tensor, mels: Tensor, memory_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.decoder.teacher_forcing(memory, mels, memory_lengths)


def pad_to_bucket(memory: Tensor, mels: Tensor) -> tuple[Tensor, Tensor]:
    """A training batch's memory and mels zero-padded to their (token, frame) bucket."""
    return pad_to_shape(memory, mels, memory.size(1) + -memory.size(1) % TOKEN_BUCKET,
                        mels.size(2) + -mels.size(2) % FRAME_BUCKET)


def pad_to_shape(memory: Tensor, mels: Tensor, n_tokens: int, n_frames: int) -> tuple[Tensor, Tensor]:
    """A training batch's memory and mels zero-padded to ``n_tokens`` tokens and ``n_frames`` frames."""
    return F.pad(memory, (0, 0, 0, n_tokens - memory.size(1))), F.pad(mels, (0, n_frames - mels.size(2)))


def cut_to_batch(outputs, n_tokens: int, n_frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """A bucket's (mel, gate, alignment) outputs cut back to the batch's own frames and tokens."""
    mel_outputs, gate_outputs, alignments = outputs
    return mel_outputs[:, :, :n_frames], gate_outputs[:, :n_frames], alignments[:, :n_frames, :n_tokens]


class _TrainingGraphs:
    """The graphed teacher-forced loops of one decoder, one per bucket, sharing one memory pool.

    A bucket's graphs keep their static outputs, gradients and the pool blocks of their capture, and a
    capture also needs an eager step's activations for its warm-up: on an H200 at batch 128, nine
    buckets of the benchmark set took all 140 GB and the tenth ran out of memory. So a new bucket
    is captured only while the GPU has room for it (judged by what the largest capture so far took
    per padded cell of batch x frames x tokens). A batch of a bucket past that replays the smallest
    captured bucket that covers it, padded further (more frames decoded, still far fewer launches
    than eager), or, where none does, runs eagerly, unpadded."""

    def __init__(self):
        self.pool = torch.cuda.graph_pool_handle()
        self.graphed: dict[tuple, object] = {}
        self.bytes_per_cell = 0.0
        self.refused = 0

    def capture(self, decoder, memory: Tensor, mels: Tensor, memory_lengths: Tensor):
        """The graphed loop of this bucket's shapes, or None when the GPU has no room for it."""
        cells = memory.size(0) * memory.size(1) * mels.size(2)
        if not room_for_capture(available_gpu_bytes(), self.bytes_per_cell, cells):
            self.refused += 1
            if self.refused == 1:
                _say(f"--cuda-graphs: GPU memory holds {len(self.graphed)} captured shape buckets; batches of "
                     f"other shapes replay a larger captured bucket where one covers them, else run without graphs")
            return None
        # the warm-up's eager step goes into the free memory, not beside cached blocks of earlier ones
        torch.cuda.empty_cache()
        reserved_before = torch.cuda.memory_reserved()
        # static inputs of the bucket's shape; the lengths are real ones (no all-masked row)
        sample = (torch.zeros_like(memory).requires_grad_(memory.requires_grad), torch.zeros_like(mels),
                  memory_lengths.clone())
        graphed = torch.cuda.make_graphed_callables(TeacherForcing(decoder), sample, pool=self.pool)
        note_one_time_work()  # train.py reports this step's time apart from the throughput
        # The warm-up ran on a side stream of its own, whose cached blocks no later allocation can take
        # (and a capture cannot free): let them go, so that what is left is what the capture keeps.
        torch.cuda.empty_cache()
        grown = torch.cuda.memory_reserved() - reserved_before
        self.bytes_per_cell = max(self.bytes_per_cell, grown / cells)
        # what each bucket costs is the number that decides how many fit (docs/performance.md)
        _say(f"--cuda-graphs: captured batch {memory.size(0)} x {memory.size(1)} tokens x {mels.size(2)} frames, "
             f"{grown / 2**30:.2f} GB more reserved, {available_gpu_bytes() / 2**30:.1f} GB available")
        return graphed



    def covering(self, key: tuple) -> tuple | None:
        """The key of the smallest captured bucket that holds a batch of bucket ``key`` (same batch
        size and everything else, at least its tokens and frames); None if there is none."""
        (batch, n_tokens, width), (_, n_mel, n_frames) = key[0], key[1]
        fits = [other for other in self.graphed if other[2:] == key[2:] and other[0][0] == batch
                and other[0][2] == width and other[1][1] == n_mel
                and other[0][1] >= n_tokens and other[1][2] >= n_frames]
        return min(fits, key=lambda other: other[0][1] * other[1][2], default=None)


def room_for_capture(free_bytes: int, bytes_per_cell: float, cells: int,
                     headroom: float = CAPTURE_HEADROOM) -> bool:
    """Whether a capture of ``cells`` padded cells fits, by what earlier ones took (0: none yet)."""
    return free_bytes >= headroom * bytes_per_cell * cells


def _say(message: str) -> None:
    """One line on stdout from the first process only (each rank captures its own buckets)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
            or torch.distributed.get_rank() == 0:
        print(message, flush=True)


def available_gpu_bytes() -> int:
    """Free device memory plus what the caching allocator holds unused (it can hand that out again)."""
    free, _ = torch.cuda.mem_get_info()
    return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()


def graphed_teacher_forcing(decoder, memory: Tensor, mels: Tensor, memory_lengths: Tensor):
    """Decoder.teacher_forcing's contract; forward and backward replay the graphs of the bucket.

    The graphs live on the decoder: they hold it through TeacherForcing, so a cache keyed weakly by
    the decoder would never let it go. Buckets stay captured once they are (training sees a bounded
    set of them), as many as the GPU's memory holds (_TrainingGraphs)."""
    graphs = getattr(decoder, "_training_graphs", None)
    if graphs is None:
        graphs = decoder._training_graphs = _TrainingGraphs()
    padded = pad_to_bucket(memory, mels)
    key = (tuple(padded[0].shape), tuple(padded[1].shape), memory.dtype, mels.dtype, memory.requires_grad,
           torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"),
           decoder.prenet.dropout, decoder.p_attention_dropout, decoder.p_decoder_dropout,
           tuple(p.data_ptr() for p in decoder.parameters()))  # .to()/.half() give new storage
    if key not in graphs.graphed:
        graphed = graphs.capture(decoder, *padded, memory_lengths)
        if graphed is not None:
            graphs.graphed[key] = graphed
        elif (cover := graphs.covering(key)) is not None:
            key, padded = cover, pad_to_shape(memory, mels, cover[0][1], cover[1][2])
        else:
            return decoder.teacher_forcing(memory, mels, memory_lengths)
    return cut_to_batch(graphs.graphed[key](*padded, memory_lengths), memory.size(1), mels.size(2))
