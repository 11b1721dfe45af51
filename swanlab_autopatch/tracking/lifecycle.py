"""The states of the helper process as the training process sees it, and the moves between them.

One ``Lifecycle`` per helper process; every entry point on the training side (the callback,
the console copy, the user's kept run object, the status reader, the fork hook, ``atexit``)
asks it before acting. The table is documented in docs/sidecar.md.
"""
from __future__ import annotations

import enum


class State(enum.Enum):
    STARTING = "starting"  # launched; its run is not up yet (what it is sent is also kept)
    READY = "ready"  # its run is up
    DIED_EARLY = "died early"  # it ended before its run was up: the training falls back next
    FALLEN_BACK = "fallen back"  # the run lives in the training process (client.py) instead
    ENDING = "ending"  # the end was handed over; the training waits for it, bounded
    ENDED = "ended"  # done, or the training stopped waiting (the helper goes on alone)
    LOST = "lost"  # it cannot track any more (it ended after its run was up, or SwanLab could
    #                not start a run at all): untracked from there
    FORKED = "forked"  # this is a forked child's copy: it never acts


S = State
MOVES: dict[State, frozenset] = {
    S.STARTING: frozenset({S.READY, S.DIED_EARLY, S.ENDING, S.LOST, S.FORKED}),
    S.READY: frozenset({S.ENDING, S.LOST, S.FORKED}),
    S.DIED_EARLY: frozenset({S.FALLEN_BACK, S.FORKED}),
    S.ENDING: frozenset({S.ENDED, S.DIED_EARLY, S.FORKED}),
    S.FALLEN_BACK: frozenset({S.FORKED}),
    S.ENDED: frozenset({S.FORKED}),
    S.LOST: frozenset({S.FORKED}),
    S.FORKED: frozenset(),
}
# Where data for the run is still accepted (written to the pipe).
SENDING = frozenset({S.STARTING, S.READY})


class Lifecycle:
    def __init__(self) -> None:
        self.state = State.STARTING

    def move(self, to: State) -> bool:
        """Take an allowed move; anything else leaves the state as it is (False)."""
        if to in MOVES[self.state]:
            self.state = to
            return True
        return False

    @property
    def sending(self) -> bool:
        return self.state in SENDING
