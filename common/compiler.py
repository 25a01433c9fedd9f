"""What torch.compile needs of the machine (train.py and inference.py --torch-compile,
--wn-compile-block), checked before a run starts rather than at its first compiled step."""
import os
import shutil

import torch

from common.errors import UserError


def require_compiler(device: torch.device, flag: str) -> None:
    """Raise a one-line UserError when ``flag`` (a compiling option) cannot work on ``device``: on the CPU
    inductor compiles its kernels as C++, on a GPU Triton builds its kernel launchers with a C compiler."""
    if device.type == "cuda":
        if not (os.environ.get("CC") or any(shutil.which(name) for name in ("gcc", "clang", "cc"))):
            raise UserError(f"{flag} on a GPU needs a C compiler for Triton's kernel launchers (gcc or clang, "
                            f"or CC=path): none found")
        return
    from torch._inductor import cpp_builder, exc
    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        raise UserError(f"{flag} on the CPU needs a C++ compiler (g++ or clang++, or CXX=path): none found") from None


def check_compiling_flags(args, device: torch.device) -> None:
    """:func:`require_compiler` for the compiling flags that ``args`` has switched on."""
    for name, flag in (("torch_compile", "--torch-compile"), ("wn_compile_block", "--wn-compile-block")):
        if getattr(args, name, False):
            require_compiler(device, flag)
