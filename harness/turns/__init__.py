"""Turn-taking and full duplex: the system decides when the user has finished, and copes with pauses, barge-in
and backchannels.

- :mod:`.fdb`: Full-Duplex-Bench's per-task definitions (take-turn rule, response latency, v1.5 stop latency and
  response gaps) as pure functions of timelines, so that where our names equal theirs the numbers are theirs.
- :mod:`.scenarios`: scenario utterances built from any set with the splice points known (``--data
  turn-taking:DATA``): smooth turn-taking, a pause spliced into the question, a user interruption, a backchannel.
- :mod:`.endpointer`: the endpointer adapter (streaming VAD with a hangover, barge-in) that gives offline and
  cascade backends a decision of their own when ``endpointing=system``.
- :mod:`.driver`: the runner's loop for ``endpointing=system``: the microphone keeps streaming after the file (its
  trailing silence, then silence or a room-noise bed), user speech is injected while the system answers, and
  ``end_input()`` is never called.
- :mod:`.timeline`: what the user hears (the player, with barge-in flushes) and when the system is audible.
- :mod:`.metrics`: every turn-taking metric, from the event log alone (definitions in its docstring).
"""

from ..hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from .scenarios import turn_taking_set

    register(
        "turn-taking",
        turn_taking_set,
        "turn-taking scenarios of any set's questions: turn-taking:DATA (smooth, pause, interrupt, backchannel)",
    )
