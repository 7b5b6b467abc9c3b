// Operator console: sessions, alerts, statistics and one session's evidence timeline.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const API = "/api/v1/operator";
  const KEY = "kyc-operator-key";
  const objectUrls = [];

  function key() { return sessionStorage.getItem(KEY) || ""; }

  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function when(ts) { return ts ? new Date(ts * 1000).toLocaleString() : ""; }

  function showError(msg) { $("error").textContent = msg; $("error").hidden = !msg; }

  async function call(method, path, body) {
    const init = { method, headers: { "X-API-Key": key() } };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const resp = await fetch(API + path, init);
    if (resp.status === 401) {  // refused key, or the operator API is not configured: say which
      let msg = "The API key was refused.";
      try { msg = (await resp.json()).error.message; } catch (e) { /* not JSON */ }
      logout();
      throw new Error(msg.charAt(0).toUpperCase() + msg.slice(1) + ".");
    }
    if (!resp.ok) {
      let msg = "Error " + resp.status;
      try { msg = (await resp.json()).error.message; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return resp;
  }

  async function json(path) { return (await call("GET", path)).json(); }

  function logout() {
    sessionStorage.removeItem(KEY);
    $("console").hidden = true;
    $("login").hidden = false;
  }

  const PAGE = 50;
  let offset = 0;  // sessions are listed newest first, a page at a time

  async function refresh() {
    showError("");
    try {
      const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
      if ($("f-decision").value) q.set("decision", $("f-decision").value);
      if ($("f-status").value) q.set("status", $("f-status").value);
      const [stats, alerts, sessions] = await Promise.all([
        json("/stats"), json("/alerts?acknowledged=false"), json("/sessions?" + q.toString())]);
      $("login").hidden = true;
      $("console").hidden = false;
      renderStats(stats);
      renderAlerts(alerts.alerts);
      renderSessions(sessions.sessions);
    } catch (err) {
      showError(err.message);
    }
  }

  function renderStats(s) {
    const parts = [["Sessions", s.sessions], ["Pass rate", s.pass_rate === null ? "-" : Math.round(s.pass_rate * 100) + "%"],
      ["Review rate", s.review_rate === null ? "-" : Math.round(s.review_rate * 100) + "%"],
      ["Decision p50 / p95 (ms)", (s.decision_ms_p50 ?? "-") + " / " + (s.decision_ms_p95 ?? "-")],
      ["By decision", counts(s.by_decision)], ["Top reasons", counts(s.reasons)]];
    const dl = el("dl");
    for (const [k, v] of parts) { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); }
    $("stats").replaceChildren(dl);
  }

  function counts(byName) {  // {"fail": 5, "pass": 3} -> "fail 5 · pass 3"
    const entries = Object.entries(byName || {});
    return entries.length ? entries.map(([k, n]) => k + " " + n).join(" · ") : "none yet";
  }

  function renderAlerts(alerts) {
    const body = $("alerts");
    body.replaceChildren();
    if (!alerts.length) { body.appendChild(el("tr")).appendChild(el("td", "No open alerts", { colspan: "6" })); return; }
    for (const a of alerts) {
      const tr = el("tr");
      const sev = el("td"); sev.appendChild(el("span", a.severity, { class: "badge " + a.severity }));
      tr.append(sev, el("td", a.cause), el("td", a.session_id ? a.session_id.slice(0, 8) : ""), el("td", a.message),
        el("td", when(a.created_at)));
      const btn = el("button", "Acknowledge", { type: "button" });
      btn.addEventListener("click", async () => {
        try { await call("POST", "/alerts/" + a.id + "/ack", { by: "console" }); refresh(); }
        catch (err) { showError(err.message); }
      });
      const td = el("td"); td.appendChild(btn); tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function renderSessions(sessions) {
    const body = $("sessions");
    body.replaceChildren();
    $("page").textContent = sessions.length ? "Sessions " + (offset + 1) + "-" + (offset + sessions.length) : "No sessions";
    $("newer").disabled = offset === 0;
    $("older").disabled = sessions.length < PAGE;
    for (const s of sessions) {
      const tr = el("tr", null, { class: "clickable", tabindex: "0" });
      const dec = el("td");
      if (s.decision) dec.appendChild(el("span", s.decision, { class: "badge " + s.decision }));
      tr.append(el("td", when(s.created_at)), el("td", s.id.slice(0, 12)), el("td", s.status), dec,
        el("td", (s.reasons || []).join(", ")), el("td", s.open_alerts || ""));
      const open = () => detail(s.id);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      body.appendChild(tr);
    }
  }

  async function detail(id) {
    showError("");
    try {
      const d = await json("/sessions/" + id);
      $("detail").hidden = false;
      $("d-id").textContent = id;
      const dec = $("d-decision");
      dec.replaceChildren();
      if (d.decision) {
        dec.appendChild(el("p")).appendChild(el("span", d.decision.decision, { class: "badge " + d.decision.decision }));
        dec.appendChild(el("p", "User was told: " + d.decision.guidance));
        dec.appendChild(el("p", "Reasons: " + (d.decision.reasons.join(", ") || "none")));
        dec.appendChild(el("p", d.decision.rationale));
        const llm = d.decision.llm_used ? "The LLM judge took part." : "Decided without the LLM judge.";
        if (!d.decision.rationale.includes("without the LLM")) dec.appendChild(el("p", llm));  // said once
        const ev = d.decision.evidence || {};
        const screen = ev.signals && ev.signals.screen;
        if (screen) dec.appendChild(el("p", "Lossless texture patches: " +
          fmt(screen.features && screen.features.lossless_patches) + (screen.available ? "" : " (too few to check for a screen)")));
        // The client's word about its camera (a virtual camera can inject any video).
        const cam = ev.camera;
        dec.appendChild(el("p", "Camera (as the browser reported it): " + (cam ? [cam.label || "no label",
          cam.width && cam.height ? cam.width + "x" + cam.height : "", cam.frame_rate ? cam.frame_rate + " fps" : "",
          cam.video_inputs !== undefined ? cam.video_inputs + " video input(s)" : "",
          cam.interval_ms_median ? "frame interval " + cam.interval_ms_median + " ms (p90 " + cam.interval_ms_p90 + ")" : ""]
          .filter(Boolean).join(" · ") : "not reported")));
        const weak = ev.decision_details && ev.decision_details.uncorroborated_signals;
        if (weak && weak.length) dec.appendChild(el("p", "Weak signals, not corroborated: " + weak.join(", ")));
      } else {
        dec.appendChild(el("p", "Not decided (" + d.session.status + ")"));
      }
      const ch = $("d-challenge");
      ch.replaceChildren();
      if (d.challenge) d.challenge.steps.forEach((s, i) =>
        ch.appendChild(el("li", s.action + " " + s.start_s + "-" + s.end_s + " s: " + (d.challenge.wording[i] || ""))));
      renderActions(d.actions);
      drawPlot(d.timeline, d.challenge ? d.challenge.steps : [], d.actions);
      renderKeyframes(id, d.decision ? d.decision.keyframes : []);
      renderLlm(d);
      $("d-audit").textContent = d.audit.map((e) => when(e.at) + "  " + e.actor + "  " + e.event + "  " +
        JSON.stringify(e.detail)).join("\n");
      $("detail").scrollIntoView({ behavior: "smooth" });
    } catch (err) {
      showError(err.message);
    }
  }

  function fmt(v) { return v === null || v === undefined ? "" : (Math.round(v * 1000) / 1000); }

  function renderActions(actions) {
    const body = $("d-actions");
    body.replaceChildren();
    for (const a of actions) {
      const tr = el("tr");
      tr.append(el("td", a.action), el("td", a.start_s + "-" + a.end_s), el("td", a.verdict + (a.in_order ? "" : " (out of order)")),
        el("td", fmt(a.onset_t)), el("td", fmt(a.peak_value) + (a.peak_t !== null ? " @ " + fmt(a.peak_t) + " s" : "")),
        el("td", fmt(a.baseline_value)), el("td", a.note || ""));
      body.appendChild(tr);
    }
  }

  async function renderKeyframes(id, keyframes) {
    const box = $("d-keyframes");
    box.replaceChildren();
    while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
    if (!keyframes.length) { box.textContent = "No keyframes."; return; }
    for (const k of keyframes) {
      const fig = el("figure");
      if (k.url) {
        try {
          const blob = await (await call("GET", k.url.replace(API, ""))).blob();
          const url = URL.createObjectURL(blob);
          objectUrls.push(url);
          fig.appendChild(el("img", null, { src: url, alt: k.label + " at " + k.t + " s" }));
        } catch (err) { fig.appendChild(el("div", "(image unavailable)")); }
      } else {
        fig.appendChild(el("div", "(frame deleted by retention)"));
      }
      fig.appendChild(el("figcaption", k.label + " · " + k.t + " s"));
      box.appendChild(fig);
    }
  }

  function renderLlm(d) {
    const box = $("d-llm");
    box.replaceChildren();
    const j = d.decision && d.decision.judgment;
    if (!j) box.appendChild(el("p", "No LLM judgment for this session (offline or not asked)."));
    else box.appendChild(el("pre", JSON.stringify(j, null, 2)));
    for (const c of d.llm_calls) {
      // Template hashes shortened to 12 characters (the full ones are in the API's answer).
      const templates = Object.entries(c.template_hashes || {}).map(([name, h]) => name + " " + h.slice(0, 12));
      box.appendChild(el("p", c.kind + ": " + c.outcome + " · model " + (c.model || "-") + " · templates " +
        (templates.join(", ") || "none")));
      box.appendChild(el("pre", "usage " + JSON.stringify(c.usage, null, 1)));
    }
  }

  // Two panels over session time: head pose (degrees) above, eye/mouth/smile ratios below.
  // Action names sit in a strip above the panels and legends in a margin on the right, so
  // neither curves nor the detection markers run through any text.
  function drawPlot(points, steps, actions) {
    const cv = $("plot"), g = cv.getContext("2d");
    const W = cv.width, H = cv.height, L = 50, R = 105, T = 22, gap = 30, ph = (H - T - gap - 25) / 2;
    g.clearRect(0, 0, W, H);
    g.font = "12px system-ui";
    const tmax = Math.max(1, ...points.map((p) => p.t || 0), ...steps.map((s) => s.end_s));
    const x = (t) => L + (W - L - R) * t / tmax;
    const colours = ["rgba(21,88,176,.10)", "rgba(154,103,0,.12)"];
    steps.forEach((s, i) => {
      const x0 = x(s.start_s), w = x(s.end_s) - x0;
      g.fillStyle = colours[i % 2];
      g.fillRect(x0, T, w, 2 * ph + gap);
      g.save();  // a name longer than its window is cut at the window's edge
      g.beginPath(); g.rect(x0, 0, w, T); g.clip();
      g.fillStyle = "#333";
      g.fillText((i + 1) + ". " + s.action, x0 + 3, T - 7);
      g.restore();
    });
    const panels = [
      { top: T, series: [["yaw", "#1558b0"], ["pitch", "#b42318"]], label: "degrees" },
      { top: T + ph + gap, series: [["ear", "#1a7f37"], ["mouth_open", "#9a6700"], ["smile", "#7c3aed"]], label: "ratio" },
    ];
    const val = (p, k) => k === "ear" ? (p.ear_left != null && p.ear_right != null ? (p.ear_left + p.ear_right) / 2 : null) : p[k];
    for (const panel of panels) {
      const vals = points.flatMap((p) => panel.series.map(([k]) => val(p, k))).filter((v) => v !== null && v !== undefined);
      let lo = Math.min(0, ...vals), hi = Math.max(0.1, ...vals);
      if (hi - lo < 1e-6) hi = lo + 1;
      const y = (v) => panel.top + ph - ph * (v - lo) / (hi - lo);
      g.strokeStyle = "#ccc"; g.strokeRect(L, panel.top, W - L - R, ph);
      g.fillStyle = "#555"; g.fillText(hi.toFixed(2), 2, panel.top + 10); g.fillText(lo.toFixed(2), 2, panel.top + ph);
      g.fillText(panel.label, 2, panel.top + ph / 2);
      panel.series.forEach(([k, colour], si) => {
        g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
        let pen = false;
        for (const p of points) {
          const v = val(p, k);
          if (v === null || v === undefined) { pen = false; continue; }
          if (pen) g.lineTo(x(p.t), y(v)); else g.moveTo(x(p.t), y(v));
          pen = true;
        }
        g.stroke();
        const ly = panel.top + 12 + si * 17;  // the legend, one line per series, right of the panel
        g.beginPath(); g.moveTo(W - R + 8, ly - 4); g.lineTo(W - R + 20, ly - 4); g.stroke();
        g.fillStyle = colour; g.fillText(k, W - R + 24, ly);
      });
    }
    for (const a of actions) {  // where each action was detected: its peak, marked on both panels
      if (a.peak_t === null || a.peak_t === undefined) continue;
      g.strokeStyle = a.verdict === "performed" ? "#1a7f37" : "#b42318";
      g.setLineDash([4, 3]); g.beginPath(); g.moveTo(x(a.peak_t), T); g.lineTo(x(a.peak_t), T + 2 * ph + gap); g.stroke();
      g.setLineDash([]);
      g.fillStyle = g.strokeStyle; g.fillText(a.verdict, x(a.peak_t) + 3, T + ph + gap / 2 + 4);  // between the panels
    }
    g.fillStyle = "#555";
    for (let t = 0; t <= tmax; t += 1) g.fillText(t + " s", x(t) - 6, H - 6);
  }

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("apikey").value.trim());
    $("apikey").value = "";
    refresh();
  });
  $("logout").addEventListener("click", logout);
  $("refresh").addEventListener("click", refresh);
  const firstPage = () => { offset = 0; refresh(); };
  $("f-decision").addEventListener("change", firstPage);
  $("f-status").addEventListener("change", firstPage);
  $("newer").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); refresh(); });
  $("older").addEventListener("click", () => { offset += PAGE; refresh(); });
  if (key()) refresh();
})();
