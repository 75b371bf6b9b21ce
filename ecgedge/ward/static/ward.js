// ecgedge ward: the central-station page. Plain JS, no build step. Data arrives pushed (server-sent
// events, /api/stream); the token of the page's own address guards every request.
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const PX_PER_MM = 96 / 25.4;            // CSS pixels per mm at 96 dpi
const PX_PER_S = 25 * PX_PER_MM;        // 25 mm/s
const PX_PER_MV = 10 * PX_PER_MM;       // 10 mm/mV
const PRIORITY = { high: 3, medium: 2, low: 1 };
const beds = new Map();                 // bed -> {el, state, ring, fs, pos, count}
const alarms = new Map();               // id -> alarm row
window.wardLog = [];                    // what arrived, when (tests read it): {type, stream, id, ts, received}

function api(path) { return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN); }
function fmtTime(ts) { return new Date(ts * 1000).toLocaleTimeString(); }
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }

// ---- tiles ------------------------------------------------------------------------------------------
function tile(bed) {
  let b = beds.get(bed);
  if (b) return b;
  const t = el("div", "tile"); t.dataset.bed = bed;
  const top = el("div", "top");
  top.append(el("span", "name", "Bed " + bed), el("span", "rhythm", "—"), el("span", "quality", ""), el("span", "hr", "--"), el("span", "unit", "bpm"));
  const canvas = el("canvas"); canvas.width = Math.round(PX_PER_S * 6); canvas.height = 90;
  t.append(top, el("div", "banner"), canvas, el("div", "meta", ""));
  t.addEventListener("click", () => openHistory(bed));
  const list = document.getElementById("beds");
  const after = [...list.children].find(c => bedOrder(c.dataset.bed) > bedOrder(bed));
  list.insertBefore(t, after || null);
  b = { el: t, canvas, state: {}, ring: null, fs: 0, pos: 0, next: null };
  beds.set(bed, b);
  return b;
}
function bedOrder(bed) { return /^\d+$/.test(bed) ? bed.padStart(8, "0") : "~" + bed; }

function render(bed) {
  const b = tile(bed), s = b.state, t = b.el;
  t.querySelector(".hr").textContent = s.hr_bpm == null ? "--" : Math.round(s.hr_bpm);
  t.querySelector(".rhythm").textContent = s.rhythm || "—";
  const q = t.querySelector(".quality");
  q.textContent = s.quality === "unreliable" ? "⚠ " + (s.reason || "unreliable") : (s.quality === "ok" ? "signal ok" : "");
  q.className = "quality " + (s.quality || "");
  t.classList.toggle("offline", s.link === "down");
  t.querySelector(".meta").textContent = (s.link === "down" ? "OFFLINE · " : "") + (s.peer || "") + (s.leads ? " · " + s.leads.split(",").length + " leads @ " + s.fs_hz + " Hz" : "");
  const mine = [...alarms.values()].filter(a => a.bed === bed && a.cleared == null);
  const top = mine.sort((a, c) => PRIORITY[c.priority] - PRIORITY[a.priority])[0];
  t.classList.remove("alarm-high", "alarm-medium", "alarm-low");
  const banner = t.querySelector(".banner");
  banner.className = "banner"; banner.textContent = "";
  if (top) { t.classList.add("alarm-" + top.priority); banner.classList.add(top.priority); banner.textContent = top.text + (top.acked ? " (ack)" : ""); }
}

// ---- the strip: a sweep at 25 mm/s, as a bedside monitor draws it -----------------------------------
function addStrip(bed, fs, index, uv) {
  const b = tile(bed);
  const n = Math.round(b.canvas.width / PX_PER_S * fs);
  if (!b.ring || b.fs !== fs) { b.ring = new Float32Array(n).fill(NaN); b.fs = fs; b.next = null; }
  if (b.next !== null && index !== b.next) {   // a gap: leave it blank
    for (let k = b.next; k < index && k < b.next + n; k++) b.ring[k % n] = NaN;
  }
  for (let k = 0; k < uv.length; k++) b.ring[(index + k) % n] = uv[k] / 1000;
  b.next = index + uv.length; b.pos = b.next % n;
  drawRing(b);
}
function grid(ctx, w, h) {
  ctx.fillStyle = "#06100a"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#123020"; ctx.lineWidth = 1; ctx.beginPath();
  for (let x = 0; x < w; x += 5 * PX_PER_MM) { ctx.moveTo(x, 0); ctx.lineTo(x, h); }
  for (let y = h / 2 % (5 * PX_PER_MM); y < h; y += 5 * PX_PER_MM) { ctx.moveTo(0, y); ctx.lineTo(w, y); }
  ctx.stroke();
}
function drawRing(b) {
  const ctx = b.canvas.getContext("2d"), w = b.canvas.width, h = b.canvas.height, n = b.ring.length;
  grid(ctx, w, h);
  ctx.strokeStyle = "#3cf07a"; ctx.lineWidth = 1.4; ctx.beginPath();
  let pen = false;
  const gap = Math.round(0.15 * b.fs);          // the erase bar ahead of the sweep
  for (let i = 0; i < n; i++) {
    const ahead = (i - b.pos + n) % n;
    const v = b.ring[i];
    if (ahead < gap || Number.isNaN(v)) { pen = false; continue; }
    const x = i / b.fs * PX_PER_S, y = h / 2 - v * PX_PER_MV;
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  }
  ctx.stroke();
}

// ---- alarms and sound ---------------------------------------------------------------------------------
function setAlarm(a) {
  if (a.cleared != null && a.acked != null) alarms.delete(a.id); else alarms.set(a.id, a);
  renderAlarms(); render(a.bed);
}
function renderAlarms() {
  const body = document.querySelector("#alarms tbody"); body.textContent = "";
  const rows = [...alarms.values()].sort((a, c) => (c.cleared == null) - (a.cleared == null) || PRIORITY[c.priority] - PRIORITY[a.priority] || c.raised - a.raised);
  for (const a of rows) {
    const tr = el("tr", a.priority + (a.cleared != null ? " cleared" : "") + (a.acked != null ? " acked" : ""));
    tr.dataset.alarmId = a.id; tr.dataset.bed = a.bed; tr.dataset.alarm = a.alarm;
    tr.append(el("td", "", a.bed), el("td", "", a.text + (a.cleared != null ? " (cleared)" : "")), el("td", "", fmtTime(a.raised)));
    const td = el("td");
    if (a.acked == null) { const btn = el("button", "ack", "ack"); btn.onclick = () => acknowledge(a.id); td.append(btn); } else td.textContent = "✓";
    tr.append(td); body.append(tr);
  }
}
async function acknowledge(id) {
  const r = await fetch(`/api/alarms/${id}/ack`, { method: "POST", headers: { "X-Ward-Token": TOKEN, "Content-Type": "application/json" }, body: JSON.stringify({ by: "central station" }) });
  if (r.ok) setAlarm(await r.json());
}
let audio = null;
document.getElementById("sound").onclick = (e) => {
  audio = audio || new AudioContext(); e.target.textContent = "sound on";
};
function beep(freq, n) {
  if (!audio) return;
  for (let k = 0; k < n; k++) {
    const o = audio.createOscillator(), g = audio.createGain(), t0 = audio.currentTime + k * 0.25;
    o.frequency.value = freq; g.gain.setValueAtTime(0.15, t0); g.gain.setValueAtTime(0, t0 + 0.15);
    o.connect(g).connect(audio.destination); o.start(t0); o.stop(t0 + 0.16);
  }
}
// IEC 60601-1-8-like cadence: high, a fast burst every 5 s; medium, three tones every 15 s; low, one every 30 s.
let tick = 0;
setInterval(() => {
  tick++;
  const open = [...alarms.values()].filter(a => a.cleared == null && a.acked == null);
  const top = Math.max(0, ...open.map(a => PRIORITY[a.priority]));
  if (top === 3) beep(988, 5); else if (top === 2 && tick % 3 === 0) beep(660, 3); else if (top === 1 && tick % 6 === 0) beep(523, 1);
}, 5000);

// ---- records ---------------------------------------------------------------------------------------------
const LOGGED = new Set(["rhythm_change", "quality", "alert", "rate_alarm", "bed_link", "bed_assigned", "gap", "restart", "no_data", "device_dropped", "stream_error"]);
function describe(r) {
  switch (r.type) {
    case "rhythm_change": return `rhythm ${r.from || "—"} → ${r.to} (${Math.round(100 * r.confidence)} %)`;
    case "quality": return r.quality === "ok" ? "signal ok" : "signal unreliable: " + r.reason;
    case "alert": return `${r.alert.replace(/_/g, " ")} ${r.state}`;
    case "rate_alarm": return `${r.alarm.replace(/_/g, " ")} ${r.state}${r.technical ? " (technical)" : ""}`;
    case "bed_link": return `link ${r.state}: ${r.detail}`;
    case "bed_assigned": return `named by the gateway: ${r.reason}`;
    case "gap": return `gap ${r.seconds} s`;
    case "device_dropped": return `device ${r.peer} dropped: ${r.reason}`;
    default: return r.type;
  }
}
function record(r) {
  window.wardLog.push({ type: r.type, stream: r.stream, id: r.id, ts: r.ts, received: Date.now() / 1000, to: r.to, state: r.state, alarm: r.alarm });
  if (window.wardLog.length > 5000) window.wardLog.splice(0, 1000);
  if (r.type === "alarm") { setAlarm(r); return; }
  const bed = r.stream == null ? null : String(r.stream);
  if (bed !== null) {
    const s = tile(bed).state;
    if (r.type === "window") { s.quality = r.quality; if (r.reason) s.reason = r.reason; }
    else if (r.type === "heart_rate") s.hr_bpm = r.hr_bpm;
    else if (r.type === "rhythm_change") s.rhythm = r.to;
    else if (r.type === "quality") { s.quality = r.quality; s.reason = r.reason || ""; }
    else if (r.type === "bed_link") { s.link = r.state; s.peer = r.peer; }
    else if (r.type === "stream_start") { s.fs_hz = r.fs_hz; s.leads = r.leads.join(","); }
    render(bed);
  }
  if (LOGGED.has(r.type)) {
    const li = el("li", r.type, `${fmtTime(r.ts)} ${bed !== null ? "bed " + bed + ": " : ""}${describe(r)}`);
    li.dataset.type = r.type; if (bed !== null) li.dataset.bed = bed;
    const log = document.getElementById("log"); log.prepend(li);
    while (log.children.length > 300) log.lastChild.remove();
  }
}
function snapshot(m) {
  alarms.clear();
  for (const a of m.alarms) alarms.set(a.id, a);
  for (const s of m.beds) {
    const b = tile(s.bed); const { strip, ...state } = s; b.state = state;
    if (strip) addStrip(s.bed, strip.fs, strip.index, strip.uv);
    render(s.bed);
  }
  renderAlarms();
}

function connect() {
  const es = new EventSource(api("/api/stream"));
  const conn = document.getElementById("conn");
  es.onopen = () => { conn.textContent = "live"; conn.className = "conn up"; };
  es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "conn down"; };
  es.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "snapshot") snapshot(m);
    else if (m.type === "batch") m.records.forEach(record);
    else if (m.type === "strips") for (const s of m.strips) addStrip(s.stream, s.fs, s.index, s.uv);
    document.getElementById("counts").textContent = `${beds.size} beds · ${[...alarms.values()].filter(a => a.cleared == null).length} active alarms`;
  };
}

// ---- a bed's history: rhythm timeline, events, the strip around one --------------------------------------
const COLOURS = ["#3cf07a", "#ff8c42", "#39d5ff", "#ff4f9a", "#c39bff", "#ffd21f", "#9ad14b", "#ff5e5e"];
let historyBed = null;
function colourOf(label, legend) { if (!legend.has(label)) legend.set(label, COLOURS[legend.size % COLOURS.length]); return legend.get(label); }
async function openHistory(bed) {
  historyBed = bed;
  document.getElementById("h-bed").textContent = bed;
  document.getElementById("history").hidden = false;
  const hours = +document.getElementById("h-hours").value;
  const h = await (await fetch(api(`/api/beds/${encodeURIComponent(bed)}/history?hours=${hours}`))).json();
  const cv = document.getElementById("h-timeline"), ctx = cv.getContext("2d");
  ctx.fillStyle = "#06100a"; ctx.fillRect(0, 0, cv.width, cv.height);
  const t0 = h.since, t1 = Date.now() / 1000, x = (t) => (t - t0) / (t1 - t0) * cv.width;
  const legend = new Map();
  let cur = null, from = t0, quality = "ok";
  const seg = (a, b, label, q) => { if (!label) return; ctx.fillStyle = colourOf(label, legend); ctx.globalAlpha = q === "ok" ? 1 : 0.35; ctx.fillRect(x(a), 10, Math.max(1, x(b) - x(a)), 30); ctx.globalAlpha = 1; };
  for (const e of h.events) {
    if (e.type === "rhythm_change" || e.type === "quality" || (e.type === "bed_link" && e.state === "down")) {
      seg(from, e.ts, cur, quality); from = e.ts;
      if (e.type === "rhythm_change") cur = e.to; else if (e.type === "quality") quality = e.quality; else cur = null;
    }
  }
  seg(from, t1, cur, quality);
  for (const a of h.alarms) { ctx.fillStyle = a.priority === "high" ? "#ff2d2d" : a.priority === "medium" ? "#ffd21f" : "#39d5ff"; ctx.fillRect(x(a.raised), 44, Math.max(2, x(a.cleared || t1) - x(a.raised)), 10); }
  const key = document.getElementById("h-legend"); key.textContent = "";
  for (const [l, c] of legend) { const sw = el("i"); sw.style.background = c; const item = el("span"); item.append(sw, document.createTextNode(l)); key.append(item); }
  key.append(el("span", "", "faded: signal unreliable · lower bar: alarms"));
  const list = document.getElementById("h-events"); list.textContent = "";
  for (const e of [...h.events].reverse()) {
    const li = el("li", "", `${fmtTime(e.ts)} ${describe(e)}`); li.dataset.type = e.type;
    li.onclick = () => showStrip(bed, e.ts, describe(e)); list.append(li);
  }
}
async function showStrip(bed, ts, what) {
  const r = await (await fetch(api(`/api/beds/${encodeURIComponent(bed)}/strip?ts=${ts}&before=6&after=4`))).json();
  const cv = document.getElementById("h-strip"), ctx = cv.getContext("2d");
  grid(ctx, cv.width, cv.height);
  const start = ts - 6, x = (t) => (t - start) * PX_PER_S * (cv.width / (10 * PX_PER_S));
  ctx.strokeStyle = "#3cf07a"; ctx.lineWidth = 1.2;
  for (const c of r.chunks) {
    ctx.beginPath();
    c.uv.forEach((v, k) => { const px = x(c.ts + k / c.fs), py = cv.height / 2 - v / 1000 * PX_PER_MV; if (k) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    ctx.stroke();
  }
  ctx.strokeStyle = "#ffd21f"; ctx.beginPath(); ctx.moveTo(x(ts), 0); ctx.lineTo(x(ts), cv.height); ctx.stroke();
  document.getElementById("h-strip-caption").textContent = `${fmtTime(ts)}: ${what} — ${r.chunks.length ? "10 s around it (lead " + r.chunks[0].lead + ")" : "no strip stored for that time"}`;
}
document.getElementById("close-history").onclick = () => { document.getElementById("history").hidden = true; historyBed = null; };
document.getElementById("h-hours").onchange = () => historyBed && openHistory(historyBed);
connect();
