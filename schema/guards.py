"""Checks a record type runs before a change merges, shared by several types.

Each guard takes the :class:`schema.merge.MergeContext` and raises a
:class:`schema.errors.HemsyncError` to reject the change whole. Rules that
belong to one record type only live in that type's module.
"""

from .errors import AppendOnly, Forbidden, ImmutableField, InvalidRecord, InvalidTransition
from .state import seen_write
from .roles import ERROR_MARK

__all__ = [
    "fixed_placement",
    "append_only",
    "immutable",
    "require_reason",
    "state_machine_steps",
    "seen_value",
]


def seen_value(ctx, path):
    """The value of ``path`` as the change's device saw it (before its own edit)."""
    version = ctx.base.get(path)
    if version is None or isinstance(version, list):
        return ctx.current(path)
    write = seen_write(ctx.state, path, version)
    return ctx.current(path) if write is None else write["value"]


def fixed_placement(ctx):
    """What places a record (its patient, a round's municipality) is set once, when it is created.

    A sync never moves a record to another patient: that would plant it in
    another municipality's laptops and leave stale copies behind. Setting the
    same value again changes nothing and is let through.
    """
    if ctx.creating:
        return
    moved = sorted(path for path in ctx.rtype.fixed_fields & set(ctx.values)
                   if ctx.values[path] != ctx.current(path))
    if moved:
        raise ImmutableField(
            f"{', '.join(moved)} is fixed when the {ctx.rtype.name} is created: a record made for the wrong "
            "patient is marked entered in error (`hemsync retract`) and made again for the right one",
            details={path: ["fixed at creation"] for path in moved},
        )


def append_only(ctx):
    """Observations and amendments are never edited; only an error mark may follow."""
    if not ctx.creating and set(ctx.values) - ERROR_MARK:
        raise AppendOnly(
            f"a {ctx.rtype.name} is never edited: record a new one instead"
            + (" that supersedes it (supersedes_id)" if ctx.rtype.name == "observation" else ""),
            details={path: ["append only"] for path in sorted(set(ctx.values) - ERROR_MARK)},
        )


def immutable(*names):
    """A guard refusing any change to ``names`` after creation."""

    def guard(ctx):
        touched = sorted(n for n in names if n in ctx.values and not ctx.creating)
        if touched:
            raise ImmutableField(
                f"{', '.join(touched)} is fixed when the record is created; an admin corrects it "
                "with `hemsync-server correct-personnummer`",
                details={n: ["fixed at creation"] for n in touched},
            )

    guard.__name__ = f"immutable_{'_'.join(names)}"
    return guard


def require_reason(field, reason, when):
    """A guard: when ``when(value)`` holds for a write of ``field``, ``reason`` must be given."""

    def guard(ctx):
        if field in ctx.values and when(ctx.values[field]) and not (
            ctx.values.get(reason) or (reason not in ctx.values and ctx.current(reason))
        ):
            raise InvalidRecord(
                f"{field} = {ctx.values[field]!r} needs {reason}: say why",
                details={reason: [f"required when {field} is {ctx.values[field]!r}"]},
                code="missing_field",
            )

    guard.__name__ = f"require_{reason}"
    return guard


def state_machine_steps(ctx):
    """A status change must be a step of the machine that the actor's role may take.

    The step is checked from the status the device saw: a concurrent step is
    legal on its own and the machine's precedence then decides between them.
    """
    rtype, field = ctx.rtype, ctx.rtype.status_field
    if field not in ctx.values:
        return
    machine, target = rtype.machine, ctx.values[field]
    if ctx.creating:
        if target != machine.initial:
            raise InvalidTransition(
                f"a new {rtype.name} starts as {machine.initial!r}, not {target!r}",
                details={field: [f"must be {machine.initial!r} at creation"]},
            )
        return
    source = seen_value(ctx, field)
    if source == target or machine.allowed(source, target, ctx.actor.role):
        return
    roles = machine.roles_for(source, target)
    if roles and source not in machine.final:
        raise Forbidden(
            f"only a {' or '.join(sorted(roles))} may move a {rtype.name} from {source} to {target}",
            details={field: [f"{source} -> {target} needs {', '.join(sorted(roles))}"]},
        )
    final = f"; {source} is final" if source in machine.final else ""
    raise InvalidTransition(
        f"a {rtype.name} cannot go from {source} to {target}{final}",
        details={field: [f"{source} -> {target} is not a step"]},
    )
