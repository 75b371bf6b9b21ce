"""Lead names: their standard spelling, the aliases of other naming traditions, and picking leads by name.

The one home of lead naming (training, the window store, the streaming monitor and its views all
use it). Names compare in any case with surrounding blanks ignored. The 12 standard leads are
spelled ``I II III aVR aVL aVF V1..V6`` (``AVR`` is ``aVR``); every other name keeps its spelling.

Aliases (:data:`LEAD_ALIASES`): MIT-BIH's modified limb leads ``MLI``, ``MLII``, ``MLIII`` are
leads I, II and III for our models (a lead-II model runs on an ``MLII`` record, as on a
bedside stream that carries ``MLII``).

A single-lead source serves a single-lead request whatever the names: CinC 2017's ``ECG`` (and
any one-lead device) for a lead-II model, since single-lead devices record one bipolar lead close
to II. Sources whose lead names are chosen, not measured (a window store) opt out of that rule.
"""

from __future__ import annotations

from typing import Sequence

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.errors import MissingLeads

__all__ = ["LEAD_ALIASES", "STANDARD_12_LEADS", "canonical_lead_name", "lead_indices", "standard_lead"]

# Other traditions' names of a standard lead, upper-case keys -> the standard lead.
LEAD_ALIASES: dict[str, str] = {"MLI": "I", "MLII": "II", "MLIII": "III"}

_CANONICAL = {name.upper(): name for name in STANDARD_12_LEADS}


def canonical_lead_name(name: str) -> str:
    """The standard spelling of a 12-lead name in any case (``" avf "`` -> ``aVF``); other names
    (``MLII``, ``ECG``, ``V7``) are kept as given, without surrounding blanks."""
    name = str(name).strip()
    return _CANONICAL.get(name.upper(), name)


def standard_lead(name: str) -> str:
    """The lead a name stands for: its canonical spelling with aliases resolved (``mlii`` -> ``II``,
    ``MLI`` -> ``I``); names that are no standard lead are returned as :func:`canonical_lead_name` gives them."""
    name = canonical_lead_name(name)
    return LEAD_ALIASES.get(name.upper(), name)


def lead_indices(have: Sequence[str], wanted: Sequence[str], *, single_lead_serves_any: bool = True) -> list[int]:
    """Row of each ``wanted`` lead among ``have`` (a record's, store's or stream's lead names), in the wanted order.

    Names match through :func:`standard_lead` (any case; ``MLII`` for ``II`` and back). With
    ``single_lead_serves_any`` (the default) a one-lead source serves a one-lead request whatever
    its name. Where a name occurs twice, its first row is taken.

    Raises:
        MissingLeads: naming the wanted leads not found (canonical spelling) and the leads there are,
            e.g. ``missing lead(s) V3, V4; there are I, II, AVR``.
    """
    have, wanted = list(have), list(wanted)
    if single_lead_serves_any and len(have) == 1 and len(wanted) == 1:
        return [0]
    rows: dict[str, int] = {}
    for i, name in enumerate(have):
        rows.setdefault(standard_lead(name), i)
    missing = [canonical_lead_name(w) for w in wanted if standard_lead(w) not in rows]
    if missing:
        raise MissingLeads(missing, [str(h) for h in have])
    return [rows[standard_lead(w)] for w in wanted]
