"""A lossy link: how much of a stream is classified, and how much of it as without loss, vs frame loss.

Five minutes of 12-lead ECG at 500 Hz (five Chapman records of three rhythms from
``$ECGEDGE_SHARED_DATA`` or ``../shared/data``, each looped six times; generated records where they
are absent) are cut into 40-ms frames (20 samples, as ``ecgsim`` sends a Chapman record) and
encoded; each frame is lost with probability ``p`` (``numpy.random.default_rng(seed)``, seeds 0, 1
and 2); the bytes of the frames that remain go through the real receiving path (``StreamSession``:
decoder, sequence tracker, ``BedMonitor``, ``StreamHub``, one inference thread), with gap
concealment as ``ecgedge stream`` runs it (``--conceal-max-s 0.1``) and without it (0: every gap
restarts the filters, the behaviour before concealment).

- **coverage**: classified windows / windows the lossless run classifies (same record, same model);
- **agreement**: share of the classified windows whose label is the lossless run's label for the
  window ending nearest (within half a hop: after a gap that is not concealed windows end on
  another grid).

Both compare two runs of the same model, so they measure the link, not the model; the model must
not say the same label on every window (the case skips, saying so). Use a trained export:

    ECGEDGE_BENCH_PLOT=/tmp/lossy_link.png pytest benchmarks/test_lossy_link.py --benchmark-only --export-dir EXPORT -s

``extra_info`` per loss rate: coverage and agreement (pooled over the seeds, and the worst seed),
coverage without concealment, concealed samples, gaps, inoperable alerts. The timed part is one
lossy session run (decode to verdicts) of the five minutes. ``$ECGEDGE_BENCH_PLOT``: where to write
a PNG of coverage and agreement vs loss (nothing is written without it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ecgedge.bridge.cobs import encode_frame
from ecgedge.bridge.frame import Frame
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.runtime import Backend, Precision, runner_from_export
from ecgedge.stream.monitor import CONCEAL_MAX_S, ModelSpec, StreamSettings
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.session import StreamSession

FS, SPF = 500.0, 20
LOSS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.10)
SEEDS = (0, 1, 2)
SHARED_DATA = Path(os.environ.get("ECGEDGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CHAPMAN = ("JS00002", "JS00001", "JS00008", "JS00007", "JS00004")  # SB, AFIB, SR, AFIB, SB; 10 s each
LOOPS = 6


def recording(leads: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Five minutes of ECG in mV, rounded to 1 µV, and where it came from."""
    folder = SHARED_DATA / "chapman" / "WFDBRecords" / "01" / "010"
    if all((folder / f"{name}.hea").is_file() for name in CHAPMAN):
        import wfdb
        from ecgedge.data.leads import lead_indices

        parts = []
        for name in CHAPMAN:
            rec = wfdb.rdrecord(str(folder / name))
            parts.append(np.tile(rec.p_signal.T[lead_indices(rec.sig_name, leads)], LOOPS))
        source = "chapman " + ",".join(CHAPMAN) + f" x{LOOPS}"
    else:
        parts = [synthesize_ecg(r, seed=20 + i, duration_s=10.0 * LOOPS, fs=FS, leads=leads)[0]
                 for i, r in enumerate(("SB", "AFIB", "SR", "SVT", "SB"))]
        source = "generated SB,AFIB,SR,SVT,SB"
    return np.round(np.concatenate(parts, axis=1).astype(np.float64) * 1000).astype(np.int64), source


def frames_of(adu: np.ndarray, leads: tuple[str, ...]) -> list[bytes]:
    return [encode_frame(Frame(stream_id=0, seq=k % 65536, first_sample=a, fs_hz=FS, lead_ids=leads,
                               samples=adu[:, a:a + SPF], gain_uv=1.0))
            for k, a in enumerate(range(0, adu.shape[1], SPF))]


def lossy(frames: list[bytes], p: float, seed: int) -> list[bytes]:
    keep = np.random.default_rng(seed).random(len(frames)) >= p
    keep[0] = True  # the first frame opens the stream
    return [f for f, k in zip(frames, keep) if k]


def figures(reference: list[dict], records: list[dict], hop_in: int = 500) -> tuple[int, int, int]:
    """(classified windows, of them agreeing with the lossless run, lossless windows classified)."""
    ref = {r["samples"][1]: r["label"] for r in reference if r["type"] == "window" and r["quality"] == "ok"}
    ends = np.array(sorted(ref))
    ok = [r for r in records if r["type"] == "window" and r["quality"] == "ok"]
    agree = 0
    for w in ok:
        e = int(ends[np.abs(ends - w["samples"][1]).argmin()])
        agree += abs(e - w["samples"][1]) <= hop_in // 2 and ref[e] == w["label"]
    return len(ok), agree, len(ref)


@pytest.fixture(scope="module")
def link(manifest):
    """The activated runner, the frames, the lossless run's records and the results (plotted at the end)."""
    precision = Precision.int8 if "int8" in manifest.artefacts else Precision.fp32
    leads = tuple(manifest.leads)
    adu, source = recording(leads)
    frames = frames_of(adu, leads)
    spec = ModelSpec.from_manifest(manifest)
    with runner_from_export(manifest.folder, precision, Backend.ort_cpu, threads=1, verify=False, allow_rejected=True,
                            manifest=manifest) as runner:

        def run(sent: list[bytes], conceal_max_s: float) -> list[dict]:
            session = StreamSession(StreamHub(runner, spec, StreamSettings(conceal_max_s=conceal_max_s)))
            data = b"\0" + b"".join(sent)
            records = [r for a in range(0, len(data), 65_536) for r in session.feed(data[a:a + 65_536])]
            return records + [session.summary()]

        reference = run(frames, CONCEAL_MAX_S)
        labels = sorted({r["label"] for r in reference if r["type"] == "window" and r["quality"] == "ok"})
        results: dict[float, dict] = {}
        yield {"run": run, "frames": frames, "reference": reference, "labels": labels, "source": source,
               "precision": precision.value, "results": results}
    plot = os.environ.get("ECGEDGE_BENCH_PLOT")
    if plot and results:
        _plot(results, Path(plot), f"{manifest.data.get('name')} ({precision.value}), {source}")


@pytest.mark.parametrize("loss", LOSS)
def test_lossy_link(benchmark, loss, link, info, capsys):
    if len(link["labels"]) < 2:
        pytest.skip(f"the model says {link['labels']} on every window: agreement would prove nothing "
                    "(give a trained export: --export-dir)")
    run, frames, reference = link["run"], link["frames"], link["reference"]
    pooled = {"concealed": [0, 0, 0], "plain": [0, 0, 0]}
    worst_coverage, worst_agreement, concealed, gaps, alerts = 1.0, 1.0, 0, 0, 0
    for seed in SEEDS:
        sent = lossy(frames, loss, seed)
        for kind, conceal in (("concealed", CONCEAL_MAX_S), ("plain", 0.0)):
            records = run(sent, conceal)
            ok, agree, total = figures(reference, records)
            pooled[kind] = [pooled[kind][0] + ok, pooled[kind][1] + agree, pooled[kind][2] + total]
            if kind == "concealed":
                counts = records[-1]["streams"][0]
                worst_coverage = min(worst_coverage, ok / total)
                worst_agreement = min(worst_agreement, agree / ok if ok else float("nan"))
                concealed, gaps = concealed + counts["concealed"], gaps + sum(r["type"] == "gap" for r in records)
                alerts += counts["inoperable_alerts"]
    benchmark.group = "stream: lossy link (5 min, one session run)"
    sent = lossy(frames, loss, SEEDS[0])
    benchmark.pedantic(run, args=(sent, CONCEAL_MAX_S), rounds=1, iterations=1)
    ok, agree, total = pooled["concealed"]
    result = {"loss": loss, "seeds": list(SEEDS), "conceal_max_s": CONCEAL_MAX_S, "coverage": ok / total,
              "agreement": agree / ok if ok else float("nan"), "worst_seed_coverage": worst_coverage,
              "worst_seed_agreement": worst_agreement, "coverage_without_concealment": pooled["plain"][0] / pooled["plain"][2],
              "agreement_without_concealment": pooled["plain"][1] / pooled["plain"][0] if pooled["plain"][0] else None,
              "windows_lossless": total // len(SEEDS), "gaps": gaps, "concealed_samples": concealed, "inoperable_alerts": alerts,
              "labels_lossless": link["labels"], "record": link["source"], "precision": link["precision"]}
    link["results"][loss] = result
    benchmark.extra_info.update(info, **result)
    with capsys.disabled():
        print(f"\nloss {loss:6.1%}: coverage {result['coverage']:6.1%} (worst seed {worst_coverage:6.1%}), agreement "
              f"{result['agreement']:6.1%} (worst {worst_agreement:6.1%}); without concealment coverage "
              f"{result['coverage_without_concealment']:6.1%}; {alerts} inoperable alert(s)")


def _plot(results: dict[float, dict], path: Path, title: str) -> None:
    """Coverage and agreement (%) vs frame loss (%), with and without concealment; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = sorted(results)
    x = [100 * p for p in loss]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(x, [100 * results[p]["coverage"] for p in loss], "o-", label=f"coverage, concealed (<= {CONCEAL_MAX_S:g} s)")
    ax.plot(x, [100 * results[p]["agreement"] for p in loss], "s-", label="agreement with the lossless run")
    ax.plot(x, [100 * results[p]["coverage_without_concealment"] for p in loss], "x--", color="grey",
            label="coverage without concealment")
    ax.axhline(90, color="tab:blue", lw=0.6, ls=":")
    ax.axhline(70, color="tab:blue", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("random frame loss (%), 40-ms frames")
    ax.set_ylabel("% of windows")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
