"""Per-sample random numbers that never touch the global RNG.

Every value is a hash of (seed, the sample's index in the dataset, a stream number, the
element's position), computed with 32-bit integer arithmetic in torch (a counter-based
generator, in the spirit of Salmon et al. 2011's Philox, with a simpler mixer). So an attack's
randomness for a sample is the same whatever the batch it is in, its position in that batch,
the number of processes or the device, and drawing it leaves ``torch``'s global RNG as it was.
"""

from __future__ import annotations

import math

import torch

_MASK = 0xFFFFFFFF


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (xor-shift-multiply rounds) on int64 tensors holding 32-bit values;
    the multipliers are below 2**31, so no product overflows int64."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _MASK
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK
    return h ^ (h >> 16)


def sign_from_bits(bits: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """+1 or -1 from 32-bit random values (their top bit)."""
    return ((bits >> 31) * 2 - 1).to(dtype)


def below_from_bits(bits: torch.Tensor, high: torch.Tensor | int) -> torch.Tensor:
    """Integers in [0, high) from 32-bit random values (their top 24 bits, scaled)."""
    return ((bits >> 8) * high) >> 24


class SampleRNG:
    """Random numbers keyed per sample. ``keys`` (N,) int64 come from :meth:`from_index`;
    ``rng[idx]`` keeps the keys of a subset of samples (for attacks that drop finished ones).

    Each draw names a ``stream`` (an int); the same stream gives the same numbers, so an attack
    uses a different stream per purpose and iteration.

    Parameters
    ----------
    keys : torch.Tensor, optional
        (N,) int64 per-sample keys (use :meth:`from_index`).
    n : int, default 0
        Without keys: how many samples (keys drawn from the global RNG on first use).
    device : torch.device, optional
        Where those keys live.
    """

    def __init__(self, keys: torch.Tensor | None = None, n: int = 0, device=None) -> None:
        self._keys, self._n, self._device = keys, n, device

    @property
    def keys(self) -> torch.Tensor:
        """The per-sample keys; without an index they are drawn from the global RNG (one draw,
        on first use), which is how attacks inside training get fresh randomness per step."""
        if self._keys is None:
            self._keys = torch.randint(0, 2**32, (self._n,), device=self._device)
        return self._keys

    @classmethod
    def from_index(cls, index: torch.Tensor, seed: int = 0) -> SampleRNG:
        index = index.to(torch.int64)
        return cls(_mix(_mix(torch.full_like(index, seed & _MASK)) ^ (index & _MASK)))

    def fork(self, branch: int) -> SampleRNG:
        """Independent per-sample keys for a sub-attack (``branch`` >= 0), e.g. in a combinator."""
        salt = _mix(torch.tensor((branch * 0x3C6EF372 + 0x1B873593) & _MASK, device=self.keys.device))
        return SampleRNG(_mix(self.keys ^ salt))

    def __getitem__(self, idx) -> SampleRNG:
        return SampleRNG(self.keys[idx])

    def __len__(self) -> int:
        return self._n if self._keys is None else self._keys.shape[0]

    def bits(self, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
        """(N, *shape) int64 tensor of independent 32-bit values."""
        numel = math.prod(shape)
        base = _mix((self.keys + _mix(torch.tensor(stream & _MASK, device=self.keys.device))) & _MASK)
        counter = torch.arange(numel, device=self.keys.device, dtype=torch.int64)
        values = _mix(base[:, None] ^ _mix((counter * 0x9E3779B1 + 1) & _MASK))
        return values.view(len(self), *shape)

    def uniform(self, stream: int, shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
        """Uniform in (0, 1), 24 bits, never exactly 0 or 1."""
        return ((self.bits(stream, shape) >> 8).to(dtype) + 0.5) * 2.0**-24

    def normal(self, stream: int, shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
        """Standard normal (Box-Muller over two uniform streams of their own: negative numbers,
        so they never coincide with a uniform stream)."""
        u1 = self.uniform(-2 * stream - 1, shape, torch.float64)
        u2 = self.uniform(-2 * stream - 2, shape, torch.float64)
        return ((-2 * u1.log()).sqrt() * torch.cos(2 * math.pi * u2)).to(dtype)

    def integers(self, stream: int, high: torch.Tensor | int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """Integers in [0, high) per sample; ``high`` a scalar or an (N,) tensor."""
        high = torch.as_tensor(high, device=self.keys.device).view(-1, *([1] * len(shape)))
        return below_from_bits(self.bits(stream, shape), high)

    def sign(self, stream: int, shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
        """+1 or -1 with equal probability."""
        return sign_from_bits(self.bits(stream, shape), dtype)
