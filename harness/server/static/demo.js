// s2s-bench browser demo: microphone -> 16 kHz pcm16 frames over s2s-ws/1 -> streamed answer played with Web Audio.
"use strict";
const PROTOCOL = "s2s-ws/1";
const RATE = 16000;            // what we send; the server checks it against its backend
const FRAME = 320;             // 20 ms frames
const AUDIBLE = 0.01;          // -40 dBFS
const WINDOW = 160;            // 10 ms at 16 kHz

const $ = (id) => document.getElementById(id);
const state = { ws: null, ctx: null, mic: null, node: null, down: null, pending: [], talking: false,
                turn: 0, tEnd: null, outRate: RATE, next: 0, chunks: [], outSamples: 0, tail: new Float32Array(0),
                heard: false, spoken: 0, ready: null };
window.s2sDemo = state;  // for tests and curious users

function status(text, error = false) { const s = $("status"); s.textContent = text; s.className = error ? "error" : ""; }

// Box-filter decimator: each output sample averages the input samples within one output period (anti-aliasing).
class Downsampler {
  constructor(inRate, outRate) { this.r = inRate / outRate; this.buf = new Float32Array(0); this.pos = 0; }
  push(x) {
    const buf = new Float32Array(this.buf.length + x.length); buf.set(this.buf); buf.set(x, this.buf.length);
    const out = []; const half = this.r / 2;
    while (this.pos + half < buf.length) {
      const lo = Math.max(0, Math.ceil(this.pos - half)), hi = Math.min(buf.length - 1, Math.floor(this.pos + half));
      let s = 0; for (let i = lo; i <= hi; i++) s += buf[i];
      out.push(hi >= lo ? s / (hi - lo + 1) : 0); this.pos += this.r;
    }
    const drop = Math.max(0, Math.floor(this.pos - half) - 1);
    this.buf = buf.slice(drop); this.pos -= drop; return Float32Array.from(out);
  }
}

function toPcm16(x) {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.round(Math.max(-1, Math.min(1, x[i])) * 32767);
  return out.buffer;
}

function firstAudible(x) {  // index of the first sample whose 10 ms window reaches -40 dBFS RMS, or -1
  const w = Math.min(WINDOW, x.length); if (!w) return -1;
  let acc = 0; for (let i = 0; i < w; i++) acc += x[i] * x[i];
  for (let s = 0; s + w <= x.length; s++) {
    if (acc / w >= AUDIBLE * AUDIBLE) {
      for (let k = s; k < s + w; k++) if (Math.abs(x[k]) >= AUDIBLE) return k;
      return s;
    }
    if (s + w < x.length) acc += x[s + w] * x[s + w] - x[s] * x[s];
  }
  return -1;
}

function draw(canvas, x, color) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  c.fillStyle = "#10151f"; c.fillRect(0, 0, w, h); c.strokeStyle = color; c.beginPath();
  const step = Math.max(1, Math.floor(x.length / w));
  for (let px = 0; px < w && px * step < x.length; px++) {
    let m = 0; for (let i = px * step; i < (px + 1) * step && i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
    c.moveTo(px, h / 2 - m * h / 2); c.lineTo(px, h / 2 + m * h / 2);
  }
  c.stroke();
}

// The performance.now() time at which AudioContext time t reaches the speakers.
function perfTimeOf(t) {
  const ctx = state.ctx;
  if (ctx.getOutputTimestamp) {
    const ts = ctx.getOutputTimestamp();
    if (ts.performanceTime > 0) return ts.performanceTime + (t - ts.contextTime) * 1000;
  }
  return performance.now() + (t - ctx.currentTime + (ctx.outputLatency || ctx.baseLatency || 0)) * 1000;
}

function play(x) {
  const ctx = state.ctx;
  const buf = ctx.createBuffer(1, x.length, state.outRate); buf.copyToChannel(x, 0);
  const src = ctx.createBufferSource(); src.buffer = buf; src.connect(ctx.destination);
  const when = Math.max(state.next, ctx.currentTime + 0.03);
  src.start(when); state.next = when + x.length / state.outRate;
  if (!state.heard && state.tEnd !== null) {
    const joined = new Float32Array(state.tail.length + x.length); joined.set(state.tail); joined.set(x, state.tail.length);
    const k = firstAudible(joined);
    if (k >= 0) {
      state.heard = true;
      const sampleTime = when + Math.max(0, k - state.tail.length) / state.outRate;
      const audibleAt = perfTimeOf(sampleTime);
      const ttfa = audibleAt - state.tEnd;
      setTimeout(() => showTtfa(ttfa), Math.max(0, audibleAt - performance.now()));
    }
    state.tail = joined.slice(Math.max(0, joined.length - WINDOW));
  }
  state.chunks.push(x); state.outSamples += x.length; $("received").textContent = String(state.outSamples);
}

function showTtfa(ms) {
  $("ttfa").textContent = `${ms.toFixed(0)} ms`; $("ttfa").dataset.ms = ms.toFixed(1);
  const row = document.getElementById(`turn-${state.turn}`);
  if (row) row.children[2].textContent = ms.toFixed(0);
}

function connect() {
  return new Promise((resolve, reject) => {
    const token = new URLSearchParams(location.search).get("token");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` +
                (token ? `?token=${encodeURIComponent(token)}` : "");
    const ws = new WebSocket(url); ws.binaryType = "arraybuffer";
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    ws.onclose = (e) => { if (state.ws === ws) { state.ws = null; if (e.code !== 1000) status(`closed (${e.code} ${e.reason})`, e.code !== 1000); } };
    ws.onmessage = onMessage;
  });
}

function onMessage(ev) {
  if (ev.data instanceof ArrayBuffer) {
    const pcm = new Int16Array(ev.data); const x = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) x[i] = pcm[i] / 32767;
    play(x); return;
  }
  const msg = JSON.parse(ev.data);
  if (msg.type === "ready") {
    state.outRate = msg.output_sample_rate; $("backend").textContent = msg.backend.name;
    if (state.ready) { state.ready(); state.ready = null; }
  } else if (msg.type === "done") {
    const all = new Float32Array(state.outSamples); let o = 0; for (const c of state.chunks) { all.set(c, o); o += c.length; }
    draw($("answer"), all, "#7fd1a8");
    const row = document.getElementById(`turn-${state.turn}`);
    if (row) row.children[3].textContent = (state.outSamples / state.outRate).toFixed(2);
    status(`answer complete (${(state.outSamples / state.outRate).toFixed(2)} s)`); $("talk").disabled = false;
    document.body.dataset.done = String(state.turn);
  } else if (msg.type === "mark") {
    status(`mark: ${msg.name}${msg.text ? " — " + msg.text : ""}`);
  } else if (msg.type === "error") {
    status(`server error ${msg.code}: ${msg.message}`, true); $("talk").disabled = false; $("end").disabled = true;
  }
}

async function startMic() {
  if (state.mic) return;
  state.ctx = new AudioContext();
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
    noiseSuppression: false, autoGainControl: false } });
  await state.ctx.audioWorklet.addModule("/static/capture-worklet.js");
  state.mic = state.ctx.createMediaStreamSource(stream);
  state.node = new AudioWorkletNode(state.ctx, "capture");
  state.down = new Downsampler(state.ctx.sampleRate, RATE);
  const level = [];
  state.node.port.onmessage = (e) => {
    const x = state.down.push(e.data);
    for (let i = 0; i < x.length; i += 40) level.push(x[i]);
    if (level.length > 2000) level.splice(0, level.length - 2000);
    if (!state.talking) return;
    for (const v of x) state.pending.push(v);
    while (state.pending.length >= FRAME) {
      const frame = Float32Array.from(state.pending.splice(0, FRAME));
      state.spoken += frame.length;
      if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(toPcm16(frame));
    }
    draw($("mic"), Float32Array.from(level), "#8fb3ff");
  };
  state.mic.connect(state.node);  // the node is not connected to the speakers: no echo
}

async function talk() {
  $("talk").disabled = true;
  try {
    await startMic();
    await state.ctx.resume();
    if (!state.ws) state.ws = await connect();
    state.turn += 1; state.tEnd = null; state.heard = false; state.chunks = []; state.outSamples = 0;
    state.tail = new Float32Array(0); state.pending = []; state.spoken = 0; state.next = 0;
    $("received").textContent = "0"; $("ttfa").textContent = "…"; delete $("ttfa").dataset.ms;
    const ready = new Promise((resolve) => { state.ready = resolve; });
    state.ws.send(JSON.stringify({ type: "start", protocol: PROTOCOL, sample_rate: RATE, format: "pcm16",
                                   session_id: `demo-${Date.now()}-${state.turn}` }));
    await ready;
    const row = document.createElement("tr"); row.id = `turn-${state.turn}`;
    row.innerHTML = `<td>${state.turn}</td><td></td><td>…</td><td>…</td>`; $("turns").prepend(row);
    state.talking = true; $("end").disabled = false; status("listening… press End turn when you are done");
  } catch (err) {
    status(String(err.message || err), true); $("talk").disabled = false;
  }
}

function endTurn() {
  if (!state.talking) return;
  state.talking = false; $("end").disabled = true;
  if (state.pending.length) { state.ws.send(toPcm16(Float32Array.from(state.pending))); state.spoken += state.pending.length; state.pending = []; }
  state.tEnd = performance.now();
  state.ws.send(JSON.stringify({ type: "end_of_turn" }));
  const row = document.getElementById(`turn-${state.turn}`);
  if (row) row.children[1].textContent = (state.spoken / RATE).toFixed(2);
  status("waiting for the answer…");
}

$("talk").addEventListener("click", talk);
$("end").addEventListener("click", endTurn);
fetch("/health").then((r) => r.json()).then((h) => { $("backend").textContent = h.backend.name; }).catch(() => {});
