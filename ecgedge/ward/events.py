"""The gateway's own records, as typed events with ``to_json()``, and the one alarm policy.

A ward adds what a single ``ecgedge stream`` cannot see: which connection a bed came on, a bed
whose device went away (a technical alarm, as a central station's "no telemetry"), a bed name the
gateway had to assign, and a device dropped for misbehaving. Everything else is the records of
:mod:`ecgedge.stream.events`, consumed by their ``to_json()`` so that event types added there
(heart rate, rate alarms, ...) reach the database and the page without a change here.

:func:`alarm_of` maps any record to the alarm it raises or clears: the priorities of IEC 60601-1-8
(high: red, a fast triple beep; medium: yellow; low: cyan) with the reason beside each choice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: The technical alarm of a bed whose device link is down ("no telemetry" on a central station).
NO_TELEMETRY = "no_telemetry"


class LinkState(str, enum.Enum):
    down = "down"
    up = "up"


class AlarmPriority(str, enum.Enum):
    """IEC 60601-1-8 alarm priorities; the page colours and sounds them (red / yellow / cyan)."""

    high = "high"
    medium = "medium"
    low = "low"


@dataclass(frozen=True)
class BedLink:
    """A bed's device connected (``up``) or its connection ended (``down``, ``detail`` says why).

    ``connection``: the gateway's number for the connection (``ward`` session ``session`` of the
    database, so two runs' records never look alike); ``peer``: the device's address.
    """

    stream: str
    state: LinkState
    detail: str
    peer: str
    connection: int
    session: int

    def to_json(self) -> dict:
        return {"type": "bed_link", "stream": self.stream, "state": LinkState(self.state).value, "detail": self.detail,
                "peer": self.peer, "connection": self.connection, "session": self.session}


@dataclass(frozen=True)
class BedAssigned:
    """The gateway named a bed itself: the device sent stream id ``wire_stream`` (0, the default of
    a device nobody configured, or an id another connected device holds) from ``peer``."""

    stream: str
    wire_stream: int
    peer: str
    reason: str
    session: int

    def to_json(self) -> dict:
        return {"type": "bed_assigned", "stream": self.stream, "wire_stream": self.wire_stream, "peer": self.peer,
                "reason": self.reason, "session": self.session}


@dataclass(frozen=True)
class DeviceDropped:
    """The gateway closed a connection that broke a limit (garbage, flood, silence before its
    first frame, too many connections); ``beds`` those it carried."""

    peer: str
    reason: str
    connection: int
    session: int
    beds: tuple[str, ...] = ()
    decode_errors: int = 0
    bytes_read: int = 0

    def to_json(self) -> dict:
        return {"type": "device_dropped", "peer": self.peer, "reason": self.reason, "connection": self.connection,
                "session": self.session, "beds": list(self.beds), "decode_errors": self.decode_errors,
                "bytes": self.bytes_read}


@dataclass(frozen=True)
class DeviceErrors:
    """Bytes from one connection that were not frames, counted by kind over a while (at most one
    record per :data:`~ecgedge.ward.gateway.Limits.error_report_s` per connection, so a device
    sending garbage cannot flood the database)."""

    peer: str
    connection: int
    session: int
    by_kind: dict[str, int]
    beds: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"type": "device_errors", "peer": self.peer, "connection": self.connection, "session": self.session,
                "by_kind": dict(self.by_kind), "beds": list(self.beds)}


@dataclass(frozen=True)
class AlarmChange:
    """What a record does to one alarm of one bed: ``raised`` (True) or cleared (False)."""

    bed: str
    alarm: str
    raised: bool
    priority: AlarmPriority
    technical: bool
    text: str


# Rate alarms are the life-threatening ones of IEC 60601-2-27 (asystole, extreme brady/tachycardia):
# high priority. Where the monitor cannot confirm one (technical: poor signal) it is a medium technical
# alarm, as "ECG signal inoperable" is. A lost link and an inoperable signal leave the bed unwatched:
# medium technical. A rhythm change is shown in the event list, not alarmed: the classifier's labels
# (AFIB, SB, GSVT, ...) are advisory.
def alarm_of(record: dict) -> AlarmChange | None:
    """The alarm change a record (an event's ``to_json()``) makes, or None (most records make none)."""
    kind, bed = record.get("type"), record.get("stream")
    if bed is None:
        return None
    bed = str(bed)
    if kind == "rate_alarm":
        technical = bool(record.get("technical"))
        name = str(record.get("alarm"))
        hr = record.get("hr_bpm")
        shown = isinstance(hr, (int, float)) and name != "asystole"  # asystole's rate is the last one before it
        text = name.replace("_", " ") + (f" ({hr:g} bpm)" if shown else "")
        if technical:
            text += f" — cannot confirm: {record.get('reason', 'poor signal')}"
        return AlarmChange(bed, name, record.get("state") == "raised", AlarmPriority.medium if technical else AlarmPriority.high,
                           technical, text)
    if kind == "alert":
        name = str(record.get("alert"))
        text = name.replace("_", " ") + (f": {record['reason']}" if record.get("reason") else "")
        return AlarmChange(bed, name, record.get("state") == "raised", AlarmPriority.medium, True, text)
    if kind == "bed_link":
        up = record.get("state") == LinkState.up.value
        return AlarmChange(bed, NO_TELEMETRY, not up, AlarmPriority.medium, True,
                           "no telemetry" + ("" if up else f": {record.get('detail', 'link down')}"))
    return None
