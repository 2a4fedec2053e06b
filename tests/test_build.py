"""The build carries what it should: CUDA kernels whenever it was asked to compile them."""
import os

import pytest
import torch

import edfast


@pytest.mark.skipif(os.environ.get("EDFAST_EXPECT_CUDA") != "1", reason="build not asked for CUDA")
def test_cuda_kernels_compiled_and_registered():
    # `make test` sets EDFAST_EXPECT_CUDA=1 with FORCE_CUDA=1: the .cu sources were compiled and
    # their kernels are registered for the CUDA dispatch key, GPU present or not.
    assert edfast.cuda_kernels_built()
    for op in ("perturb", "contrastive_logsumexp", "contrastive_logsumexp_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"edfast::{op}", "CUDA")


def test_cpu_kernels_registered():
    for op in ("perturb", "contrastive_logsumexp", "contrastive_logsumexp_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"edfast::{op}", "CPU")
