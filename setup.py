"""Build of edfast._C: C++ CPU kernels always, CUDA kernels when nvcc and a CUDA build of torch
are present (or when FORCE_CUDA=1, which fails loudly if they are not)."""
import glob
import os
import sys

import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _locate_cuda_home():
    """Where torch should look for the CUDA toolkit, set before torch.utils.cpp_extension reads
    it. torch derives it from `which nvcc`, which is wrong when nvcc is a wrapper script outside
    the toolkit (e.g. /usr/local/bin/nvcc -> /usr/local/cuda-13.0/bin/nvcc)."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    candidates = ["/usr/local/cuda"] + ([os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))] if nvcc else [])
    for root in candidates:
        if os.path.exists(os.path.join(root, "bin", "nvcc")) and os.path.exists(
            os.path.join(root, "include", "cuda_runtime_api.h")
        ):
            os.environ["CUDA_HOME"] = root
            return


_locate_cuda_home()
from torch.utils import cpp_extension  # noqa: E402  (reads CUDA_HOME on import)


def want_cuda():
    forced = os.environ.get("FORCE_CUDA", "0") == "1"
    import torch

    have_toolkit = cpp_extension.CUDA_HOME is not None and os.path.exists(
        os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc")
    )
    if forced and not have_toolkit:
        sys.exit("FORCE_CUDA=1 but no CUDA toolkit (nvcc) was found: set CUDA_HOME")
    if forced and torch.version.cuda is None:
        sys.exit("FORCE_CUDA=1 but the installed torch is a CPU build")
    return forced or (have_toolkit and torch.version.cuda is not None)


def toolkit_pip_includes():
    """Headers torch's CUDA headers need (cuSPARSE, cuBLAS) that the pip package of the
    toolkit carries when the system toolkit lacks them (DESIGN §7)."""
    try:
        import nvidia
    except ImportError:
        return []
    found = []
    for base in nvidia.__path__:
        found += [d for d in glob.glob(os.path.join(base, "cu[0-9]*", "include")) if os.path.isdir(d)]
    return found


def extension():
    rel = lambda pattern: sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))
    sources = ["csrc/ops.cpp", "csrc/ops_common.cpp", "csrc/ops_fused.cpp", "csrc/ops_mlp.cpp"] + rel("csrc/cpu/*.cpp")
    # -ffp-contract=off: the noise maths must round as on the device (csrc/core/exact_float.h).
    # -fopenmp: at::parallel_for runs serially without it.
    cxx = ["-O3", "-ffp-contract=off", "-fopenmp"]
    link = ["-fopenmp"]
    if want_cuda():
        sources += rel("csrc/ops*_cuda.cpp") + rel("csrc/cuda/*.cu")
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
        nvcc = ["-O3", "-lineinfo", "-Xcompiler", "-ffp-contract=off"]
        return cpp_extension.CUDAExtension(
            "edfast._C",
            sources,
            include_dirs=toolkit_pip_includes(),
            define_macros=[("EDFAST_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
            extra_link_args=link,
        )
    return cpp_extension.CppExtension("edfast._C", sources, extra_compile_args={"cxx": cxx},
                                      extra_link_args=link)


setup(
    name="edfast",
    version="0.1.0",
    packages=find_packages(include=["edfast", "edfast.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
