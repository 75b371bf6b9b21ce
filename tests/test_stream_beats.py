"""The stream knows beats (issue 23, item 3): heart rate, beats and RR irregularity every hop, the rate
alarms (asystole, extreme bradycardia / tachycardia, each with its technical variant), on real
MIT-BIH records (``../shared/data/mitdb``), spliced or time-stretched where a condition is needed.

The monitors run a single-lead model spec (lead II; the record's MLII) and no model: the beats and
alarms are cut with each window, before inference (``BedMonitor`` alone), and the hub/session tests
run the linear model of ``helpers.linear_export`` on lead II.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from ecgedge.beats import RATE_BEATS, detect_beats, heart_rate_bpm, rr_irregularity
from ecgedge.config import PreprocessConfig
from ecgedge.errors import ConfigError
from ecgedge.manifest import load_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.stream.events import AlertState, HeartRate, RateAlarm, RateAlarmKind, WindowVerdict
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.monitor import SATURATED_FLAG, BedMonitor, ModelSpec, StreamSettings
from ecgedge.stream.rate import ASYSTOLE_S, RateAlarmSettings, _rate_of, qrs_lead
from ecgedge.stream.session import StreamSession
from helpers import LABELS, WINDOW, linear_export, mv, python_frames

FS = 360.0  # MIT-BIH
SPEC = ModelSpec(("II",), LABELS, PreprocessConfig(), WINDOW)
pytestmark = pytest.mark.data


def mitdb(shared_data, record: str, seconds: float) -> np.ndarray:
    """The first ``seconds`` of MIT-BIH ``record``'s MLII in mV, as the 1-µV frames carry it (float64)."""
    wfdb = pytest.importorskip("wfdb")
    base = shared_data / "mitdb" / record
    if not base.with_suffix(".hea").is_file():
        pytest.skip(f"MIT-BIH {record} not in {shared_data / 'mitdb'}")
    rec = wfdb.rdrecord(str(base), sampto=int(seconds * FS), channel_names=["MLII"])
    return mv(np.round(rec.p_signal.T * 1000).astype(np.int64))


def run_monitor(x: np.ndarray, *, chunk: int = 777, settings: StreamSettings = StreamSettings(), lead_off=None, fs: float = FS):
    """Every event a lone monitor gives for ``x`` pushed in chunks; ``lead_off(a, b)`` -> lead indices off."""
    m = BedMonitor(0, fs_in=fs, lead_names=["MLII"], model=SPEC, settings=settings)
    events = []
    for a in range(0, x.shape[1], chunk):
        off = lead_off(a, a + chunk) if lead_off else ()
        events += m.push(x[:, a:a + chunk], a, off)
    return events


def alarms(events, kind: RateAlarmKind | None = None) -> list[RateAlarm]:
    return [e for e in events if isinstance(e, RateAlarm) and (kind is None or e.alarm is kind)]


def rates(events) -> list[HeartRate]:
    return [e for e in events if isinstance(e, HeartRate)]


def splice(x: np.ndarray, at: int, filler: np.ndarray) -> np.ndarray:
    """``x`` with ``filler`` (samples, mV) inserted at sample ``at``."""
    return np.concatenate([x[:, :at], filler[None, :], x[:, at:]], axis=1)


def beat_after(x: np.ndarray, t_s: float) -> int:
    """Sample of the first beat (the detector's, on the whole excerpt) after ``t_s``."""
    b = detect_beats(x[0], FS).samples
    return int(b[b > t_s * FS][0])


# ---- heart rate, beats, irregularity ------------------------------------------------------------------

def test_every_hop_carries_heart_rate_beats_and_irregularity(shared_data):
    x = mitdb(shared_data, "100", 60)
    events = run_monitor(x)
    verdicts = [e for e in events if isinstance(e, WindowVerdict)]
    hr = rates(events)
    # One HeartRate right after each verdict, at its end sample.
    assert [h.sample for h in hr] == [v.end_sample for v in verdicts]
    assert all(isinstance(events[events.index(v) + 1], HeartRate) for v in verdicts)
    # The beats are the detector's on the whole excerpt (chunk-invariant), in input samples, flagged.
    found = np.array([s for h in hr for s in h.beats])
    offline = detect_beats(x[0], FS).samples
    np.testing.assert_array_equal(found, offline[:found.size])
    assert offline.size - found.size <= 1  # the last beat needs the samples after the last hop
    assert all(len(h.beats) == len(h.beat_flags) for h in hr)
    # Record 100 is sinus rhythm at about 75 bpm: the rate is there from the third second on, from
    # up to RATE_BEATS intervals, the irregularity low.
    late = [h for h in hr if h.t_s >= 10]
    assert all(h.rr_count == RATE_BEATS and 65 < h.hr_bpm < 85 and h.irregularity < 0.1 for h in late)
    r = late[0].to_json()
    assert r["type"] == "heart_rate" and set(r) >= {"hr_bpm", "rr_count", "irregularity", "beats", "beat_flags", "sample", "t"}
    assert not alarms(events)


def test_beats_off_emits_no_heart_rate(shared_data):
    x = mitdb(shared_data, "100", 15)
    assert not rates(run_monitor(x, settings=StreamSettings(beats=False)))


@pytest.fixture(scope="module")
def lead_ii(tmp_path_factory):
    """(runner, ModelSpec) of the linear model on lead II, activated."""
    folder = linear_export(tmp_path_factory.mktemp("linear_ii") / "export", leads=("II",))
    with runner_from_export(folder, "fp32", threads=1) as runner:
        yield runner, ModelSpec.from_manifest(load_manifest(folder))


def test_same_events_through_the_session_and_the_hub(shared_data, lead_ii):
    """``ecgedge stream``'s path (frames -> StreamSession -> StreamHub) and a hub pushed 60-s chunks give
    the same heart-rate and rate-alarm records (a flat stretch raises an asystole in both)."""
    runner, spec = lead_ii
    x = mitdb(shared_data, "100", 40)
    x = splice(x, beat_after(x, 20.0) + int(0.3 * FS), np.full(int(7 * FS), x[0, beat_after(x, 20.0) + int(0.3 * FS)]))
    session = StreamSession(StreamHub(runner, spec))
    via_session = []
    for frame in python_frames(x, FS, ["MLII"], spf=18):
        via_session += session.feed(frame)
    via_session += session.flush()
    hub = StreamHub(runner, spec)
    hub.open(0, fs_in=FS, lead_names=["MLII"])
    via_hub = []
    for a in range(0, x.shape[1], int(60 * FS)):
        hub.push(0, x[:, a:a + int(60 * FS)], a)
        via_hub += hub.flush()
    kinds = ("heart_rate", "rate_alarm")
    mine = [r for r in via_session if r["type"] in kinds]
    theirs = [r for r in via_hub if r["type"] in kinds]
    # The session's last frames wait for a window that the hub's last push did not reach either.
    assert mine == theirs[:len(mine)] and len(theirs) - len(mine) <= 1
    assert [r["alarm"] for r in mine if r["type"] == "rate_alarm"] == ["asystole", "asystole"]


# ---- asystole ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("filler", ["flat", "noise"])
def test_asystole_raised_within_6_s_and_cleared_once(shared_data, filler):
    """Record 100 with 8 s of a flat line (or 20-µV noise, as an amplifier's floor) spliced in 0.3 s
    after a beat: one physiological asystole, raised within 6 s of the last beat, cleared once
    beats are back."""
    x = mitdb(shared_data, "100", 40)
    last = beat_after(x, 20.0)
    at = last + int(0.3 * FS)
    n = int(8 * FS)
    fill = (np.full(n, x[0, at]) if filler == "flat"
            else x[0, at] + 0.02 * np.random.default_rng(0).standard_normal(n))
    events = run_monitor(splice(x, at, fill))
    asys = alarms(events)
    assert [(a.alarm, a.state, a.technical) for a in asys] == [(RateAlarmKind.asystole, AlertState.raised, False),
                                                              (RateAlarmKind.asystole, AlertState.cleared, False)]
    raised = asys[0]
    assert raised.last_beat == last
    assert raised.t_s - last / FS <= 6.0 and raised.since_beat_s <= 6.0
    assert raised.t_s - last / FS >= ASYSTOLE_S  # never before the pause is 4 s long
    assert raised.to_json()["alarm"] == "asystole"


@pytest.mark.parametrize("pause_s", [2.0, 3.0, 3.7])
def test_a_pause_shorter_than_the_threshold_raises_nothing(shared_data, pause_s):
    """A pause of 3 s (R to R: the beats around a flat stretch moved together) raises nothing, at any hop phase."""
    x = mitdb(shared_data, "100", 40)
    last = beat_after(x, 20.0)
    nxt = beat_after(x, last / FS + 0.1)
    cut_a, cut_b = last + int(0.3 * FS), nxt - int(0.3 * FS)
    flat = np.full(int(pause_s * FS) - (cut_a - last) - (nxt - cut_b), x[0, cut_a])
    y = np.concatenate([x[:, :cut_a], flat[None, :], x[:, cut_b:]], axis=1)
    for offset in range(0, int(FS), int(FS) // 4):  # the hop's phase against the pause
        assert not alarms(run_monitor(y[:, offset:]))


# ---- extreme bradycardia and tachycardia --------------------------------------------------------------

def test_extreme_tachycardia_and_bradycardia_on_time_stretched_records(shared_data):
    """Record 100 (about 75 bpm) time-compressed 2.2x (a 360-Hz signal with every interval 2.2x shorter:
    about 165 bpm) raises one extreme tachycardia; stretched 2.2x (about 34 bpm) one extreme
    bradycardia; a normal stretch after each clears it once."""
    x = mitdb(shared_data, "100", 60)
    fast = sps.resample_poly(x, 5, 11, axis=1)  # 60 s of signal in 27 s
    slow = sps.resample_poly(x[:, :int(30 * FS)], 11, 5, axis=1)  # 30 s of signal in 66 s
    for stretched, kind, beyond in ((fast, RateAlarmKind.tachycardia, lambda hr: hr > 140),
                                    (slow, RateAlarmKind.bradycardia, lambda hr: hr < 40)):
        y = np.concatenate([x[:, :int(20 * FS)], stretched, x[:, int(20 * FS):int(50 * FS)]], axis=1)
        events = run_monitor(y)
        got = alarms(events)
        assert [(a.alarm, a.state, a.technical) for a in got] == [(kind, AlertState.raised, False), (kind, AlertState.cleared, False)]
        assert beyond(got[0].hr_bpm)
        # Raised while the stretched part plays, within 6 of its RR intervals (5 at the new rate turn the
        # median of 8; the interval across the splice is a mixed one) + the detector's delay + a hop.
        rr = 60.0 / got[0].hr_bpm
        assert 20.0 < got[0].t_s <= 20.0 + 6 * rr + 0.3 + 1.0
        assert got[1].t_s > 20.0 + stretched.shape[1] / FS


def test_rate_alarm_settings_are_checked():
    with pytest.raises(ConfigError, match="no normal rate"):
        RateAlarmSettings(brady_bpm=100, tachy_bpm=105)
    with pytest.raises(ConfigError, match="asystole_s"):
        RateAlarmSettings(asystole_s=-1)
    assert qrs_lead(("I", "II", "V1")) == 1 and qrs_lead(("MLII", "V1")) == 0 and qrs_lead(("V1", "V5")) == 0


def test_limits_are_configurable(shared_data):
    """Record 100 (about 75 bpm) is an extreme tachycardia for a 70-bpm limit."""
    x = mitdb(shared_data, "100", 30)
    settings = StreamSettings(rate_alarms=RateAlarmSettings(brady_bpm=20, tachy_bpm=70))
    assert [(a.alarm, a.state) for a in alarms(run_monitor(x, settings=settings))] == [(RateAlarmKind.tachycardia, AlertState.raised)]


# ---- technical variants --------------------------------------------------------------------------------

def test_asystole_with_the_electrode_off_is_technical(shared_data):
    """The QRS lead flagged off for 8 s: no beat, and the asystole raised is the technical one (lead-off)."""
    x = mitdb(shared_data, "100", 40)
    a, b = int(20 * FS), int(28 * FS)
    events = run_monitor(x, chunk=int(FS) // 4, lead_off=lambda s, e: [0] if s < b and e > a else [])
    got = alarms(events, RateAlarmKind.asystole)
    assert got and got[0].technical and got[0].state is AlertState.raised and "lead-off" in got[0].reason
    assert not [g for g in got if not g.technical]


@pytest.mark.parametrize("bad", ["nan", "saturated"])
def test_asystole_on_unusable_signal_is_technical(shared_data, bad):
    """8 s without a usable QRS lead spliced in after a beat: NaN samples (the detector holds its last
    value), or a flat lead the device flags as ADC-saturated: the asystole raised is the technical one."""
    x = mitdb(shared_data, "100", 40)
    last = beat_after(x, 20.0)
    at, n = last + int(0.3 * FS), int(8 * FS)
    y = splice(x, at, np.full(n, np.nan if bad == "nan" else x[0, at]))
    m = BedMonitor(0, fs_in=FS, lead_names=["MLII"], model=SPEC)
    events = []
    for a in range(0, y.shape[1], int(FS) // 4):
        flags = SATURATED_FLAG if bad == "saturated" and a < at + n and a + int(FS) // 4 > at else 0
        events += m.push(y[:, a:a + int(FS) // 4], a, device_flags=flags)
    got = alarms(events, RateAlarmKind.asystole)
    assert got and all(a.technical for a in got), [a.to_json() for a in got]
    assert got[0].state is AlertState.raised
    assert got[0].reason.startswith("NaN in lead II" if bad == "nan" else "device: ADC saturated")
    assert got[-1].state is AlertState.cleared  # once the beats are back


def test_artefact_in_a_pause_is_no_physiological_asystole(shared_data):
    """8 s of large movement artefact (1-8 Hz noise, QRS-sized) after a beat: the detector takes some of
    it for beats, and a pause in it is not quiet, so no physiological asystole is raised."""
    x = mitdb(shared_data, "100", 40)
    last = beat_after(x, 20.0)
    at, n = last + int(0.3 * FS), int(8 * FS)
    noise = sps.sosfilt(sps.butter(2, [1, 8], "bandpass", fs=FS, output="sos"), np.random.default_rng(1).standard_normal(n))
    events = run_monitor(splice(x, at, x[0, at] + 3.0 * noise))
    assert not [a for a in alarms(events, RateAlarmKind.asystole) if not a.technical]


# ---- heart-rate accuracy (IEC 60601-2-27: within 10 % or 5 bpm) ------------------------------------------

@pytest.mark.parametrize("record", ["100", "208"])
def test_heart_rate_within_10_percent_or_5_bpm(shared_data, record):
    """The first 5 minutes of 100 and 208 (208: frequent PVCs, couplets, fusion beats): at least 99 %
    of the hops (from 10 s on) within +-10 % or +-5 bpm of the reference beats' rate at the hop end
    (:func:`ecgedge.evaluate.stream.heart_rate_accuracy`); no physiological rate alarm."""
    from ecgedge.data.annotations import read_beat_reference
    from ecgedge.evaluate.stream import heart_rate_accuracy

    x = mitdb(shared_data, record, 300)
    events = run_monitor(x, chunk=int(60 * FS))
    ref = read_beat_reference(shared_data / "mitdb" / record)
    acc = heart_rate_accuracy([e.to_json() for e in events if isinstance(e, (HeartRate, RateAlarm))], ref)
    assert acc["hops"] >= 280 and acc["share_within"] >= 0.99, acc
    assert not [a for a in alarms(events) if not a.technical]


# ---- the ward's detectors in one pass -----------------------------------------------------------------

def test_push_many_equals_each_detector_alone(shared_data):
    """``StreamingQrsDetector.push_many`` (the hub's: one band-pass call for the beds that share a chunk
    length) gives every detector exactly the beats it gives alone: 6 beds of record 100 at different
    phases, chunks of two lengths, NaN samples and concealed ones in some."""
    from ecgedge.beats import StreamingQrsDetector

    x = mitdb(shared_data, "100", 30)[0]
    beds = 6
    alone = [StreamingQrsDetector(FS, 1) for _ in range(beds)]
    many = [StreamingQrsDetector(FS, 1) for _ in range(beds)]
    got_alone: list[list] = [[] for _ in range(beds)]
    got_many: list[list] = [[] for _ in range(beds)]
    pos = [0] * beds
    rng = np.random.default_rng(4)
    for step in range(40):
        chunks, concealed = [], []
        for b in range(beds):
            n = 180 if b % 2 else 233
            c = x[(pos[b] + 1000 * b + np.arange(n)) % x.size].copy()
            if rng.random() < 0.2:
                c[10:20] = np.nan
            k = np.zeros(n, bool)
            if rng.random() < 0.2:
                k[30:40] = True
            chunks.append(c)
            concealed.append(k if k.any() else None)
            pos[b] += n
        for b in range(beds):
            got_alone[b].append(alone[b].push(chunks[b], concealed[b]))
        for b, found in enumerate(StreamingQrsDetector.push_many(many, chunks, concealed)):
            got_many[b].append(found)
    for b in range(beds):
        a = [(f.samples.tolist(), f.flags.tolist()) for f in got_alone[b]]
        m = [(f.samples.tolist(), f.flags.tolist()) for f in got_many[b]]
        assert a == m
        assert sum(len(f.samples) for f in got_alone[b]) > 20


# ---- live views ---------------------------------------------------------------------------------------

def test_show_draws_beats_rate_and_alarms(shared_data, lead_ii, tmp_path):
    """``--show``: the head line carries the heart rate and a raised asystole, a row of ▲ marks the beats;
    ``--show-png``: a strip per rate alarm raised (with the beats marked and the rate in its title)."""
    import io

    from ecgedge.stream.show import PngEvents, TerminalView

    runner, spec = lead_ii
    x = mitdb(shared_data, "100", 34)
    at = beat_after(x, 20.0) + int(0.3 * FS)
    x = splice(x, at, np.full(int(8 * FS), x[0, at]))[:, :int(27 * FS)]  # ends inside the flat stretch
    out = io.StringIO()
    term = TerminalView(out, seconds=10.0, lead="II", size=(100, 30))
    png = PngEvents(tmp_path, lead="II")
    session = StreamSession(StreamHub(runner, spec), on_frame=lambda f: (term.frame(f), png.frame(f)))
    for frame in python_frames(x, FS, ["MLII"], spf=18):
        records = session.feed(frame)
        term.update(records, 0.0)
        png.update(records)
    records = session.flush()
    term.update(records, 0.0)
    png.update(records)
    screen = term.render()
    assert "HR " in screen and "ASYSTOLE" in screen and "▲" in screen
    if png._figure is not None:  # matplotlib installed
        assert [p.name for p in png.written if "alarm_asystole" in p.name]


def test_cli_takes_the_rate_alarm_limits(tmp_path):
    """``ecgedge stream --asystole-s/--brady-bpm/--tachy-bpm``: in the help, and a limit that leaves no
    normal rate is one clear line, no traceback."""
    from typer.testing import CliRunner

    from ecgedge.cli.main import app

    res = CliRunner().invoke(app, ["stream", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and all(o in res.output for o in ("--asystole-s", "--brady-bpm", "--tachy-bpm"))
    res = CliRunner().invoke(app, ["stream", str(tmp_path), "--source", "stdin", "--brady-bpm", "100", "--tachy-bpm", "90"])
    assert res.exit_code != 0 and "no normal rate" in res.output and "Traceback" not in res.output


# ---- gaps ---------------------------------------------------------------------------------------------

def test_gaps_concealed_keep_the_rate_and_long_ones_restart_it(shared_data):
    """A 36-sample gap (0.1 s, concealed: the detector gets the concealed mask) over an R peak: the rate
    runs on and a beat there is flagged concealed (2) or lost, never invented; a 5-s gap (the filters
    restart, the detector too): the RR history starts over after it (no RR interval spans the gap)
    and no asystole is raised for the lost seconds."""
    x = mitdb(shared_data, "100", 60)
    peak = beat_after(x, 20.0)
    settings = StreamSettings(conceal_max_s=0.1)
    m = BedMonitor(0, fs_in=FS, lead_names=["MLII"], model=SPEC, settings=settings)
    events = []
    cut_a, cut_b = peak - 10, peak + 26  # 36 samples lost around the R peak: concealed
    long_a, long_b = int(40 * FS), int(45 * FS)  # 5 s lost: a restart
    for a in range(0, x.shape[1], 90):
        b = min(a + 90, x.shape[1])
        keep = [(s, e) for s, e in ((a, min(b, cut_a)), (max(a, cut_b), min(b, long_a)), (max(a, long_b), b)) if e > s]
        for s, e in keep:
            events += m.push(x[:, s:e], s)
    hr = rates(events)
    near = [(s, f) for h in hr for s, f in zip(h.beats, h.beat_flags) if abs(s - peak) < 0.15 * FS]
    assert all(f & 2 for _, f in near)  # found in the concealed stretch: flagged
    during = [h for h in hr if cut_b / FS < h.t_s < long_a / FS]
    assert all(h.rr_count == RATE_BEATS and 65 < h.hr_bpm < 85 for h in during[5:])  # the rate ran on
    after = [h for h in hr if h.t_s > long_b / FS]
    assert after[0].rr_count == 0 and after[0].hr_bpm is None  # starts over after the long gap
    assert max(s for h in after for s in h.beats) > long_b and min(s for h in after for s in h.beats) >= long_b
    assert not alarms(events)


def test_rate_in_plain_python_is_numpys_bit_for_bit():
    """The monitor's heart rate and irregularity (plain Python on at most 9 beats) equal
    heart_rate_bpm and rr_irregularity (numpy medians) exactly, odd and even counts alike."""
    rng = np.random.default_rng(3)
    for fs in (360.0, 500.0, 128.0):
        for n in range(RATE_BEATS + 2):
            for _ in range(20):
                samples = np.cumsum(rng.integers(50, 900, n)).tolist()
                rr = np.diff(np.array(samples, dtype=np.float64)) / fs
                hr, irr, n_rr = _rate_of(samples, fs)
                want_hr = heart_rate_bpm(rr) if rr.size else float("nan")
                assert n_rr == rr.size
                assert (hr == want_hr) or (np.isnan(hr) and np.isnan(want_hr))
                want_irr = rr_irregularity(rr)
                assert (irr == want_irr) or (np.isnan(irr) and np.isnan(want_irr))
