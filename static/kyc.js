// The webcam page: camera -> session -> frames at the hinted rate -> complete -> result.
// Stable hooks for automated tests: #start, #instruction, #result[data-decision], #error.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const API = "/api/v1";
  const LEAD_IN_TEXT = "Look straight at the camera";
  let state = null;

  function show(section) {
    for (const id of ["intro", "capture", "done"]) $(id).hidden = id !== section;
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message;
    el.hidden = false;
    $("start").disabled = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function cameraMessage(err) {
    const name = err && err.name;
    if (!window.isSecureContext) return "The camera needs a secure (https) connection.";
    if (name === "NotAllowedError" || name === "SecurityError")
      return "Camera permission was denied. Allow the camera for this site in your browser settings, then try again.";
    if (name === "NotFoundError" || name === "OverconstrainedError")
      return "No camera was found. Connect a camera, then try again.";
    if (name === "NotReadableError" || name === "AbortError")
      return "The camera is busy: close other apps or tabs that use it, then try again.";
    return "The camera could not be started (" + (name || "unknown error") + ").";
  }

  // A refused start (too many failed checks, or too many started): say how long to wait.
  function waitMessage(err) {
    const minutes = Math.max(1, Math.ceil(err.retryAfter / 60));
    const wait = err.retryAfter ? " You can try again in " + (minutes === 1 ? "about a minute." : "about " + minutes + " minutes.") : " Please try again later.";
    return (err.code === "locked_out" ? "Too many checks did not succeed." : "Too many checks were started.") + wait;
  }

  async function api(method, path, token, body, timeoutMs) {
    const headers = {};
    if (token) headers["Authorization"] = "Bearer " + token;
    const init = { method, headers };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    if (timeoutMs) init.signal = AbortSignal.timeout(timeoutMs);  // rejects like a lost connection
    const resp = await fetch(API + path, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const msg = data && data.error ? data.error.message : "The service answered " + resp.status + ".";
      const err = new Error(msg);
      err.status = resp.status;
      err.code = data && data.error ? data.error.code : "http_" + resp.status;
      err.retryAfter = Number(resp.headers.get("Retry-After")) || 0;
      throw err;
    }
    return { status: resp.status, data };
  }

  async function start() {
    clearError();
    $("start").disabled = true;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError(cameraMessage(null));
      return;
    }
    let stream;
    try {
      // Ask for the camera first: the session's lifetime should not run out while the user decides.
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false });
    } catch (err) {
      showError(cameraMessage(err));
      return;
    }
    let session;
    try {
      session = (await api("POST", "/sessions")).data;
    } catch (err) {
      stream.getTracks().forEach((t) => t.stop());
      showError(err.status === 429 ? waitMessage(err) : "Could not start the check: " + err.message);
      return;
    }
    state = { session, stream, seq: 0, queue: [], inFlight: false, stopped: false, lastText: "", t0: 0,
              timer: null, ui: null, done: false, completing: false, lastImage: null,
              awaiting: new Map(), patches: [], camera: await describeCamera(stream), frameTimes: [] };
    $("mode").hidden = session.llm_mode !== "offline";
    $("mode").textContent = "The AI judge is not available on this server: the video checks run without it.";
    renderSteps(session.challenge.steps);
    show("capture");
    const video = $("preview");
    video.srcObject = stream;
    try { await video.play(); } catch (e) { /* autoplay of a muted stream is allowed */ }
    await waitForFrames(video);
    watchFrameTimes(video);
    beginCapture();
  }

  // What the browser says about the camera, for the server's virtual-camera check (an
  // injected video feed shows up as a webcam). The server treats all of it as the client's word.
  async function describeCamera(stream) {
    const track = stream.getVideoTracks()[0];
    const s = (track && track.getSettings) ? track.getSettings() : {};
    const out = {};
    if (track && track.label) out.label = Array.from(track.label).slice(0, 200).join("");  // by code point
    if (Number.isInteger(s.width)) out.width = s.width;
    if (Number.isInteger(s.height)) out.height = s.height;
    if (typeof s.frameRate === "number" && isFinite(s.frameRate)) out.frame_rate = Math.round(s.frameRate * 100) / 100;
    if (s.resizeMode === "none" || s.resizeMode === "crop-and-scale") out.resize_mode = s.resizeMode;
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      out.video_inputs = Math.min(64, devices.filter((d) => d.kind === "videoinput").length);
    } catch (e) { /* not listed: the field stays out */ }
    return out;
  }

  // The spread of the intervals between the camera's frames (a virtual camera's are often
  // perfectly regular or bunched): median and 90th percentile, in milliseconds.
  function watchFrameTimes(video) {
    if (!video.requestVideoFrameCallback) return;
    const seen = (now) => {
      if (!state || state.stopped) return;
      if (state.frameTimes.length < 2000) state.frameTimes.push(now);
      video.requestVideoFrameCallback(seen);
    };
    video.requestVideoFrameCallback(seen);
  }

  function cameraReport() {
    const out = Object.assign({}, state.camera);
    const t = state.frameTimes, gaps = [];
    for (let i = 1; i < t.length; i++) gaps.push(t[i] - t[i - 1]);
    if (gaps.length >= 5) {
      gaps.sort((a, b) => a - b);
      const at = (q) => Math.min(60000, Math.round(gaps[Math.floor(q * (gaps.length - 1))] * 10) / 10);
      out.interval_ms_median = at(0.5);
      out.interval_ms_p90 = at(0.9);
    }
    return out;
  }

  function waitForFrames(video) {
    return new Promise((resolve) => {
      if (video.readyState >= 2 && video.videoWidth) return resolve();
      video.addEventListener("loadeddata", () => resolve(), { once: true });
    });
  }

  function renderSteps(steps) {
    const ol = $("steps");
    ol.textContent = "";
    steps.forEach((s, i) => {
      const li = document.createElement("li");
      li.textContent = (i + 1) + ". " + s.instruction;
      ol.appendChild(li);
    });
  }

  function beginCapture() {
    const s = state.session;
    const hints = s.upload;
    const video = $("preview");
    const scale = Math.min(1, hints.width / video.videoWidth, hints.height / video.videoHeight);
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });  // read back every frame
    state.t0 = performance.now();
    const period = 1000 / hints.fps;
    const grab = () => {
      if (state.stopped) return;
      const t = (performance.now() - state.t0) / 1000;
      if (t >= s.challenge.capture_s) { finishCapture(); return; }
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);  // unmirrored, as the camera sees
      // Synchronous JPEG encoding (about a millisecond at 640x480); sent as a JSON batch of
      // data URLs, which the server parses faster than multipart.
      const image = canvas.toDataURL("image/jpeg", hints.jpeg_quality);
      // A camera slower than the upload rate (or a covered lens) gives the same picture twice:
      // the same bytes would be refused as a replayed frame, so the page waits for a new one.
      if (image === state.lastImage) return;
      state.lastImage = image;
      const seq = state.seq++;
      const frame = { seq, t: Math.round(t * 1000) / 1000, image };
      if (hints.patch_every && seq % hints.patch_every === 0) keepForPatch(seq, canvas);
      state.queue.push(frame);
      pump();
    };
    grab();
    state.timer = setInterval(grab, period);
    state.ui = setInterval(updateInstruction, 100);
    updateInstruction();
  }

  // Lossless PNG patches: JPEG's colour subsampling erases the fine stripes a screen shows, a
  // PNG keeps them. Every patch_every-th frame's pixels are kept until the server's answer for
  // that frame says where the face is in it; the patch is cut there, from that same frame, and
  // goes with the next request, so it lands on the face however the head or the phone moved.
  // The browser writes RGBA PNG; the service accepts it for patches when fully opaque.
  const MAX_AWAITING = 8;  // frames kept for a patch while their answers are awaited
  function keepForPatch(seq, canvas) {
    const copy = document.createElement("canvas");
    copy.width = canvas.width;
    copy.height = canvas.height;
    copy.getContext("2d").drawImage(canvas, 0, 0);
    state.awaiting.set(seq, copy);
    // A long outage: the oldest frames' patches are given up rather than memory.
    for (const old of state.awaiting.keys()) {
      if (state.awaiting.size <= MAX_AWAITING) break;
      state.awaiting.delete(old);
    }
  }

  function cutPatches(answered) {
    const size = state.session.upload.patch_size;
    for (const f of answered) {
      const canvas = state.awaiting.get(f.seq);
      if (!canvas) continue;
      state.awaiting.delete(f.seq);
      const nose = f.feedback && f.feedback.nose;
      if (nose) state.patches.push(cutPatch(f.seq, canvas, nose, size));
    }
  }

  const patchCanvas = document.createElement("canvas");
  function cutPatch(seq, canvas, nose, size) {
    const w = Math.min(size, canvas.width), h = Math.min(size, canvas.height);
    const x = Math.min(Math.max(Math.round(nose[0] - size / 2), 0), canvas.width - w);
    const y = Math.min(Math.max(Math.round(nose[1] - size / 2), 0), canvas.height - h);
    patchCanvas.width = w;
    patchCanvas.height = h;
    patchCanvas.getContext("2d").drawImage(canvas, x, y, w, h, 0, 0, w, h);
    return { seq, image: patchCanvas.toDataURL("image/png"), x, y };
  }

  function updateInstruction() {
    if (!state || state.stopped) return;
    const s = state.session;
    const t = (performance.now() - state.t0) / 1000;
    const steps = s.challenge.steps;
    let text = LEAD_IN_TEXT, remaining = steps[0].start_s - t, current = -1;
    for (let i = 0; i < steps.length; i++) {
      if (t >= steps[i].start_s && t < steps[i].end_s) {
        text = steps[i].instruction; remaining = steps[i].end_s - t; current = i;
      }
    }
    if (t >= steps[steps.length - 1].end_s) { text = "Hold still"; remaining = s.challenge.capture_s - t; }
    if (text !== state.lastText) {
      $("instruction").textContent = text;  // aria-live announces each new instruction once
      state.lastText = text;
    }
    $("countdown").textContent = remaining > 0 ? Math.ceil(remaining) : "";
    const pct = Math.min(100, Math.round(100 * t / s.challenge.capture_s));
    $("bar").style.width = pct + "%";
    $("bar").parentElement.setAttribute("aria-valuenow", String(pct));
    Array.from($("steps").children).forEach((li, i) => {
      li.className = i === current ? "current" : (t >= steps[i].end_s ? "past" : "");
    });
  }

  // A lost connection or a restarting server (no answer, or 502-504) is not the user's fault:
  // the frames are sent again (the session and its frames survive a restart) for as long as
  // the oldest of them is within the server's bound on late frames (upload.max_lag_s).
  const UPLOAD_TIMEOUT_MS = 10000;  // an upload that hangs counts as a lost connection
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  function transient(err) { return !err.status || err.status === 502 || err.status === 503 || err.status === 504; }
  const lagOf = (frame) => (performance.now() - state.t0) / 1000 - frame.t;

  async function postFrames(frames, patches) {
    const path = "/sessions/" + state.session.id + "/frames";
    const body = patches.length ? { frames, patches } : { frames };
    return (await api("POST", path, state.session.token, body, UPLOAD_TIMEOUT_MS)).data;
  }

  // A patch sent again after a lost answer is answered "duplicate": the first one counts.
  async function send(batch, patches) {
    let retried = false, delay = 250;
    for (;;) {
      try {
        if (retried && batch.length > 1) return await sendOneByOne(batch, patches);
        return await postFrames(batch, patches);
      } catch (err) {
        // A frame sent again after a lost answer may have been stored the first time.
        if (retried && err.code === "out_of_sequence") return null;
        if (!transient(err)) throw err;
        // Leave a second's margin under the server's bound for the attempt itself.
        if (state.stopped || (batch.length && lagOf(batch[0]) + delay / 1000 > state.session.upload.max_lag_s - 1)) throw err;
        retried = true;
        showGuidance("Connection lost: trying again…", false);
        await sleep(delay);
        delay = Math.min(2 * delay, 2000);
      }
    }
  }

  // After a lost answer the server may have stored the first frames of a batch and not the
  // rest: one at a time, a frame it already has is refused as out of sequence and skipped.
  async function sendOneByOne(batch, patches) {
    let last = null;
    for (const [i, frame] of batch.entries()) {
      try {
        last = await postFrames([frame], i === 0 ? patches : []);
      } catch (err) {
        if (err.code !== "out_of_sequence") throw err;
      }
    }
    return last;
  }

  async function pump() {
    if (state.inFlight || state.stopped) return;
    if (state.queue.length === 0 && (!state.done || state.patches.length === 0)) { maybeComplete(); return; }
    // After the capture, the last patches go alone, before the page completes.
    const max = state.session.upload.max_batch;
    const batch = state.queue.splice(0, max);
    const patches = state.patches.splice(0, max);
    state.inFlight = true;
    try {
      const data = await send(batch, patches);
      if (data && data.frames) cutPatches(data.frames);
      if (data && data.feedback) showFeedback(data.feedback);
    } catch (err) {
      fail(err);
      return;
    } finally {
      state.inFlight = false;
    }
    pump();
  }

  function maybeComplete() {
    // Complete only once every grabbed frame and patch is uploaded: one arriving after
    // completion would be refused (the session is closed by then).
    if (state.done && !state.inFlight && state.queue.length === 0 && state.patches.length === 0) complete();
  }

  function showFeedback(fb) {
    showGuidance(fb.ok ? "" : fb.message, !!fb.ok);
  }

  function showGuidance(text, ok) {
    const el = $("guidance");
    el.textContent = text;
    el.className = "guidance" + (ok ? " good" : "");
    const stage = document.querySelector(".stage");
    stage.classList.toggle("good", ok);
    stage.classList.toggle("bad", !ok);
  }

  function finishCapture() {
    clearInterval(state.timer);
    state.done = true;
    $("instruction").textContent = "Checking…";
    $("countdown").textContent = "";
    pump();
  }

  async function complete() {
    if (state.completing) return;
    state.completing = true;
    clearInterval(state.ui);
    const id = state.session.id, token = state.session.token;
    try {
      // Asking to complete again is safe: it returns the stored result once there is one,
      // and resumes a decision a restarted server left unfinished; a lost connection is
      // asked again too.
      let status = 202, data = null;
      const deadline = performance.now() + 90000;
      for (let first = true; status === 202 && performance.now() < deadline; first = false) {
        if (!first) await sleep(1000);
        try {
          ({ status, data } = await api("POST", "/sessions/" + id + "/complete", token, { camera: cameraReport() }));
        } catch (err) {
          if (!transient(err)) throw err;
        }
      }
      if (!data || !data.result) throw new Error("The result is taking longer than expected. Please try again later.");
      showResult(data.result);
    } catch (err) {
      fail(err);
    }
  }

  function stopCamera() {
    if (!state) return;
    state.stopped = true;
    clearInterval(state.timer);
    clearInterval(state.ui);
    state.stream.getTracks().forEach((t) => t.stop());
  }

  function showResult(result) {
    stopCamera();
    const el = $("result");
    const titles = { pass: "Verified", fail: "Not verified", retry: "Please try again", review: "Under review" };
    el.textContent = "";
    const title = document.createElement("strong");
    title.textContent = titles[result.guidance] || "Done";
    const message = document.createElement("span");
    message.textContent = result.message;
    el.append(title, message);
    el.setAttribute("data-decision", result.decision);
    el.setAttribute("data-guidance", result.guidance);
    $("note").textContent = result.note || "";
    if (result.note) $("mode").hidden = true;  // the result's own note says it: once is enough
    $("retry").hidden = !result.can_retry;
    show("done");
    el.focus();
  }

  function fail(err) {
    stopCamera();
    show("intro");
    const msg = err.code === "session_expired" ? "The check took too long and expired. Please start again."
      : !err.status ? "The connection to the service was lost. Check your connection, then start again."
      : err.message || "Something went wrong. Please try again.";
    showError(msg);
  }

  function retry() {
    state = null;
    clearError();
    $("result").removeAttribute("data-decision");
    $("result").textContent = "";
    $("guidance").textContent = "";
    show("intro");
    $("start").disabled = false;
    $("start").focus();
  }

  $("start").addEventListener("click", start);
  $("retry").addEventListener("click", retry);
})();
