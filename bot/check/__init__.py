"""``rehearse check``: the safety proofs of a script, its graph and drawings.

The proofs are about what the engine does with each kind of step (the table of step kinds,
:data:`bot.engine.steps.KINDS`), so this package sits above both the script language
(:mod:`bot.script`) and the engine.

Typical use::

    from bot.check import check_paths
    for finding in check_paths([Path("scripts/first-steps.yaml")]):
        print(finding)
"""

from bot.check._check import check_paths, check_script
from bot.check._graph import DEESCALATION, StepGraph, to_dot, to_mermaid

__all__ = [
    "DEESCALATION",
    "StepGraph",
    "check_paths",
    "check_script",
    "to_dot",
    "to_mermaid",
]
