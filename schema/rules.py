"""The merge rules for concurrent writes to one field, as pure functions.

A *write* is what a change put in a field: ``{"value", "version", "hlc",
"device_id", "by"}``, where ``version`` is the id of the change that wrote it.
Two writes are concurrent when neither change had seen the other. Each rule
takes the write the field holds and an incoming concurrent write and returns a
:class:`Verdict`: which write the field shows, and whether the disagreement is
a conflict a person must resolve. The loser is never dropped: the merge keeps
it in the conflict record or the record's history.

Every rule is commutative (the verdict does not depend on which write came
first), which is what makes the server's state independent of arrival order.
"""

import dataclasses

__all__ = [
    "Verdict",
    "write_key",
    "Rule",
    "LastWriterWins",
    "KeepBoth",
    "AddWins",
    "StateMachine",
    "Transition",
    "Immutable",
]


def write_key(write):
    """Last-writer-wins order: HLC, then device id, then change id as a final tie-break."""
    return (write["hlc"], write["device_id"] or "", write["version"])


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Which of two concurrent writes a field shows, and whether a person must decide."""

    winner: dict
    loser: dict
    conflict: bool
    rule: str


class Rule:
    """Base of the field rules; ``name`` appears in the audit log's merge decisions."""

    name = "rule"
    #: True when concurrent edits are kept side by side rather than one losing to history.
    keeps_both = False

    def decide(self, current, incoming):
        """Return the Verdict for two concurrent writes."""
        raise NotImplementedError


class LastWriterWins(Rule):
    """The write with the higher (HLC, device id) wins; the other goes to history."""

    name = "last_writer_wins"

    def decide(self, current, incoming):
        winner, loser = _by_key(current, incoming)
        return Verdict(winner, loser, conflict=False, rule=self.name)


class KeepBoth(Rule):
    """Both values are kept in a conflict; the field shows the later one until resolved."""

    name = "keep_both"
    keeps_both = True

    def decide(self, current, incoming):
        winner, loser = _by_key(current, incoming)
        same = winner["value"] == loser["value"]
        return Verdict(winner, loser, conflict=not same, rule=self.name)


class AddWins(Rule):
    """A boolean where ``True`` survives a concurrent ``False`` (a warning stays active)."""

    name = "add_wins"

    def decide(self, current, incoming):
        if bool(current["value"]) == bool(incoming["value"]):
            winner, loser = _by_key(current, incoming)
            return Verdict(winner, loser, conflict=False, rule=self.name)
        winner, loser = (current, incoming) if current["value"] else (incoming, current)
        return Verdict(winner, loser, conflict=True, rule=self.name)


class Immutable(Rule):
    """Fixed at creation: the merge rejects any later write before a rule is needed."""

    name = "immutable"

    def decide(self, current, incoming):
        raise AssertionError("an immutable field never sees a concurrent write")


@dataclasses.dataclass(frozen=True)
class Transition:
    """A legal step of a state machine and the roles that may take it."""

    sources: frozenset
    target: str
    roles: frozenset


class StateMachine(Rule):
    """A status field: legal steps by role, and a precedence for concurrent steps.

    ``rank`` orders states for concurrent edits (the higher wins; equal ranks
    fall back to last writer wins); ``conflict_when`` lists (winner, loser)
    pairs that must also raise a conflict, because the losing act was deliberate.
    """

    name = "state_machine"

    def __init__(self, *, initial, transitions, rank, conflict_when=(), final=()):
        self.initial = initial
        self.transitions = tuple(transitions)
        self.rank = dict(rank)
        self.conflict_when = frozenset(conflict_when)
        self.final = frozenset(final)
        self.states = frozenset(self.rank)

    def allowed(self, source, target, role):
        """True when ``role`` may move the status from ``source`` to ``target``."""
        if source in self.final:
            return False
        return any(
            target == t.target and source in t.sources and role in t.roles for t in self.transitions
        )

    def roles_for(self, source, target):
        """The roles that may take this step (empty when it is no step at all)."""
        return frozenset().union(
            *(t.roles for t in self.transitions if t.target == target and source in t.sources)
        )

    def decide(self, current, incoming):
        a, b = self.rank[current["value"]], self.rank[incoming["value"]]
        if a == b:
            winner, loser = _by_key(current, incoming)
        else:
            winner, loser = (current, incoming) if a > b else (incoming, current)
        conflict = (winner["value"], loser["value"]) in self.conflict_when
        return Verdict(winner, loser, conflict=conflict, rule=self.name)


def _by_key(a, b):
    return (a, b) if write_key(a) >= write_key(b) else (b, a)
