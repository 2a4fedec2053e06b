"""What the fused-op tests (test_fused.py, test_fused_mlp.py) share."""
import torch


def assert_close_relative(got, expected, rtol=1e-12, what=""):
    """|got - expected| <= rtol * max(1, max|expected|), elementwise."""
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    error = (got - expected).abs().max().item() if expected.numel() else 0.0
    assert error <= rtol * scale, f"{what}: max error {error:.3e} > {rtol:.0e} * {scale:.3e}"


def saved_numel(loss_fn):
    """Total numel of the tensors autograd saves for the backward of ``loss_fn()``, which is
    then run."""
    total = []

    def pack(t):
        total.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    return sum(total)


def backward_reduced(loss):
    """Backward of a scalar loss, or of a per-row loss reduced with fixed non-uniform weights
    (so that the op's upstream gradient grad_v is not constant)."""
    if loss.dim() == 0:
        loss.backward()
    else:
        weights = torch.linspace(-1.0, 2.0, loss.shape[0], dtype=loss.dtype, device=loss.device)
        (loss * weights).sum().backward()
