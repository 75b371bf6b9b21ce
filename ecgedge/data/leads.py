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

Which channels of a recording are ECG leads (:func:`ecg_channel`): a channel in a voltage unit
(:data:`MV_PER_UNIT`: mV, uV/µV, nV, V in any case; a missing unit counts as WFDB's default mV)
whose name is not that of another biosignal recorded in volts (EEG, EOG, EMG, respiration). Other
channels (``ABP`` in mmHg, ``PLETH`` in NU, ``HR`` in bpm, ``RESP``, ``SpO2`` ...) are not leads:
readers leave them out of the signal and name them (:func:`channel_label`) in the data summary.
"""

from __future__ import annotations

import re
from typing import Sequence

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.errors import MissingLeads

__all__ = ["LEAD_ALIASES", "MV_PER_UNIT", "STANDARD_12_LEADS", "canonical_lead_name", "channel_label", "ecg_channel",
           "lead_indices", "mv_per_unit", "standard_lead"]

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


def chosen_lead_row(have: Sequence[str], chosen: str, wanted: Sequence[str]) -> int:
    """Row among ``have`` of the source lead ``chosen`` that a single-lead model (``wanted``: its one
    lead) reads instead of its own (``--lead`` of ``ecgedge stream`` and ``evaluate stream``): the
    shipped lead-I model on MIT-BIH's MLII, say.

    ``chosen`` is a lead name (matched as :func:`lead_indices` matches: any case, MLII for II) or a
    1-based position (``2`` or ``#2``), for sources whose leads are unnamed (WFDB's ``?``).

    Raises:
        ConfigError: the model takes several leads (``--lead`` picks one);
        MissingLeads: no such lead, or a position beyond the source's leads.
    """
    from ecgedge.errors import ConfigError

    if len(wanted) != 1:
        raise ConfigError(f"--lead picks one lead for a single-lead model; this model takes {', '.join(wanted)}")
    have = [str(h) for h in have]
    text = str(chosen).strip()
    position = text[1:] if text.startswith("#") else text
    if position.isdigit():
        if not 1 <= int(position) <= len(have):
            raise MissingLeads([f"#{position} (by position)"], have)
        return int(position) - 1
    for i, name in enumerate(have):
        if standard_lead(name) == standard_lead(text):
            return i
    raise MissingLeads([canonical_lead_name(text)], have)


MV_PER_UNIT: dict[str, float] = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6, "v": 1e3}
"""Voltage units (lower case) -> mV per unit: the units an ECG lead may come in."""

# Biosignals recorded in volts that are no ECG lead (polysomnography and ICU records put them beside
# the ECG): EEG derivations (C3-A2, Fp1 ...) are named by their montage, so they are caught by the
# prefix of their kind where the record names it, and by the 10-20 electrode names otherwise.
_NOT_ECG = re.compile(r"^(EEG|EOG|EMG|RESP|RESPIRATION|PLETH|ABP|ART|PAP|CVP|SPO2|SAO2|ICP|THOR|ABDO|AIRFLOW|PULSE|HR|BP)\b"
                      r"|^(FP|F|C|P|O|T|A|M)\d{1,2}\s*-\s*(A|M|FP|F|C|P|O|T)\d{1,2}$", re.IGNORECASE)


def mv_per_unit(units: str | None) -> float | None:
    """mV per unit of ``units`` (``"uV"`` -> 0.001); None when it is not a voltage unit. A missing
    or empty unit is WFDB's default, mV."""
    return MV_PER_UNIT.get((units or "mV").strip().lower())


def ecg_channel(name: str, units: str | None) -> bool:
    """Whether a recorded channel is an ECG lead: a voltage unit and not another biosignal's name
    (see module doc). ``("MLII", "mV")`` and ``("V5", "uV")`` are; ``("ABP", "mmHg")``,
    ``("PLETH", "NU")`` and ``("EEG C3-A2", "uV")`` are not."""
    return mv_per_unit(units) is not None and not _NOT_ECG.match(str(name).strip())


def channel_label(name: str, units: str | None) -> str:
    """How a channel is named in summaries: ``"ABP (mmHg)"``; ``"PLETH"`` when it states no unit."""
    units = (units or "").strip()
    return f"{str(name).strip()} ({units})" if units else str(name).strip()
