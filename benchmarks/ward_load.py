"""Load for ``benchmarks/test_ward_speed.py``: N bedside devices over real TCP sockets, in real time,
in a process of its own (so its CPU is not the gateway's), plus one page on the push channel.

    python benchmarks/ward_load.py PORT BEDS SECONDS PAGE_URL

Every bed is one connection with its own stream id (1..255, then 0: the gateway names those) and
sends 40-ms frames of 12 leads at 500 Hz (a synthetic sinus rhythm, each bed at its own phase),
encoded before the clock starts. Prints ``SENT frames bytes late_s`` at the end (``late_s``: the
worst lag of a send behind its frame's real-time due time).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import urllib.request

import numpy as np

from ecgedge.bridge.cobs import encode_frame
from ecgedge.bridge.frame import Frame
from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.synthetic import synthesize_ecg

FS, SPF = 500, 20


def main(port: int, beds: int, seconds: float, page: str) -> None:
    x = synthesize_ecg("SR", seed=0, duration_s=10.0, fs=FS, leads=STANDARD_12_LEADS)[0]
    adu = np.round(x * 1000).astype(np.int64)
    n = adu.shape[1]
    per_bed = int(seconds * FS / SPF)
    frames = []
    for bed in range(beds):
        sid = bed + 1 if bed < 255 else 0
        out = []
        for k in range(per_bed):
            idx = (k * SPF + 397 * bed + np.arange(SPF)) % n
            out.append(encode_frame(Frame(stream_id=sid, seq=k % 65536, first_sample=k * SPF, fs_hz=FS, lead_ids=STANDARD_12_LEADS,
                                          samples=adu[:, idx], gain_uv=1.0)))
        frames.append(out)
    stop = threading.Event()

    def read_page():
        with urllib.request.urlopen(page, timeout=seconds + 30) as r:
            while not stop.is_set() and r.read(65536):
                pass

    threading.Thread(target=read_page, daemon=True).start()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(beds)]
    t0 = time.monotonic()
    late = 0.0
    sent = nbytes = 0
    for k in range(per_bed):
        due = t0 + (k + 1) * SPF / FS
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        late = max(late, time.monotonic() - due)
        for s, f in zip(socks, frames):
            s.sendall(f[k])
            nbytes += len(f[k])
        sent += beds
    stop.set()
    for s in socks:
        s.close()
    print(f"SENT {sent} {nbytes} {late:.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
