"""Turning the user's explicit randomness into the generator each library needs.

Nothing here falls back to a global RNG: data generation must be reproducible from the
argument alone.
"""

from __future__ import annotations

import numpy as np
import torch

_SEED_BOUND = 2**31 - 1


def as_random_state(generator) -> np.random.RandomState:
    """numpy RandomState from a torch.Generator, an int seed, a RandomState or a numpy Generator.

    A torch.Generator (or numpy Generator) is advanced by one draw, which seeds the
    RandomState: successive calls with the same generator give different, reproducible data.
    """
    if isinstance(generator, np.random.RandomState):
        return generator
    if isinstance(generator, torch.Generator):
        seed = torch.randint(0, _SEED_BOUND, (), generator=generator, device=generator.device)
        return np.random.RandomState(int(seed))
    if isinstance(generator, np.random.Generator):
        return np.random.RandomState(int(generator.integers(0, _SEED_BOUND)))
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.RandomState(int(generator))
    raise TypeError("generator must be a torch.Generator, an int seed, a numpy RandomState "
                    f"or a numpy Generator, got {type(generator).__name__}")


def as_torch_generator(generator, device="cpu") -> torch.Generator:
    """torch.Generator on `device` from a torch.Generator (returned as is) or an int seed."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return torch.Generator(device=device).manual_seed(int(generator))
    raise TypeError(f"generator must be a torch.Generator or an int seed, "
                    f"got {type(generator).__name__}")
