"""Which process of a distributed job this is, from the environment only.

Config loading runs on every rank before any process group exists, so nothing here imports or
initialises torch.distributed. Launchers set the variables: torchrun, accelerate and deepspeed
set RANK / LOCAL_RANK / WORLD_SIZE; SLURM and Open MPI have their own names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

_RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "LOCAL_RANK")
_WORLD_VARS = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


@dataclass(frozen=True)
class RankInfo:
    rank: int  # global rank
    world_size: int
    source: str  # the variable the rank came from ("default" when none is set)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[int, str] | None:
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            try:
                return int(raw), name
            except ValueError:
                continue
    return None


def current(env: Mapping[str, str] | None = None) -> RankInfo:
    """The global rank and world size. RANK comes first: LOCAL_RANK is 0 on every node of a
    multi-node job, so it is only the last resort."""
    env = os.environ if env is None else env
    rank = _first_int(env, _RANK_VARS)
    world = _first_int(env, _WORLD_VARS)
    return RankInfo(
        rank=rank[0] if rank else 0,
        world_size=max(world[0], 1) if world else 1,
        source=rank[1] if rank else "default",
    )
