"""Which process of a distributed job this is, from the environment only.

Config loading runs on every rank before any process group exists, so nothing here imports or
initialises torch.distributed. Launchers set the variables: torchrun, accelerate and deepspeed
set RANK / LOCAL_RANK / WORLD_SIZE; SLURM and Open MPI have their own names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

# The most specific launcher variable first, each with the world size of the same family:
# torchrun / accelerate / deepspeed, then MPI's own world rank (Open MPI, PMIx, MPICH / Intel
# MPI through PMI, MVAPICH), then SLURM's task id (mpirun inside one srun step gives every
# rank of a node the same SLURM_PROCID), and LOCAL_RANK last (0 on every node).
_LAUNCHERS = (
    ("RANK", ("WORLD_SIZE",)),
    ("OMPI_COMM_WORLD_RANK", ("OMPI_COMM_WORLD_SIZE",)),
    ("PMIX_RANK", ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")),
    ("PMI_RANK", ("PMI_SIZE",)),
    ("MV2_COMM_WORLD_RANK", ("MV2_COMM_WORLD_SIZE",)),
    ("SLURM_PROCID", ("SLURM_NTASKS", "SLURM_NPROCS")),
    ("LOCAL_RANK", ("WORLD_SIZE", "LOCAL_WORLD_SIZE")),
)
_WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE",
               "SLURM_NTASKS")


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
    """The global rank and world size, from the most specific launcher variable set (see
    _LAUNCHERS): LOCAL_RANK is 0 on every node of a multi-node job, so it is the last resort."""
    env = os.environ if env is None else env
    rank, world = None, None
    for rank_var, size_vars in _LAUNCHERS:
        rank = _first_int(env, (rank_var,))
        if rank is not None:
            world = _first_int(env, size_vars)
            break
    if world is None:
        world = _first_int(env, _WORLD_VARS)
    return RankInfo(
        rank=rank[0] if rank else 0,
        world_size=max(world[0], 1) if world else 1,
        source=rank[1] if rank else "default",
    )
