// The profile page: the Configure dialog (Apply keeps the change on the page), then Save sends
// it to the API with the version the page was built from.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => Array.from(document.querySelectorAll(sel));
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let view = JSON.parse($("#state").textContent);
  let pending = null; // applied in the dialog, not saved yet
  const dialog = $("#dialog");
  const form = $("#dialog-form");
  const ANN = { standard: "standard message", custom: "custom recording", tts: "message made from text", none: "no message" };

  function describe(s) {
    const ring = s.ring_time || view.site.ring_time;
    if (s.action === "forward") {
      const c = view.targets.colleagues.find((t) => t.id === s.to);
      const d = view.targets.departments.find((t) => t.id === s.to);
      const who = c ? `${c.name} (${c.id})` : d ? `department ${d.name}` : s.to;
      return `After ${ring} s: forward to ${who}, ${ANN[s.announcement.kind]}`;
    }
    if (s.action === "voicemail") return `After ${ring} s: forward to voicemail`;
    if (s.drop === "message") return `After ${ring} s: play a message, then hang up`;
    return `After ${ring} s: hang up with a busy tone`;
  }

  async function call(method, url, body) {
    const opts = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) {
      opts.body = JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, opts);
    } catch (e) {
      return { status: 0, data: { error: "the server cannot be reached; try again" } };
    }
    let data = {};
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    return { status: response.status, data };
  }

  function explain(data) {
    const problems = data.problems;
    if (!problems) return data.error || "something went wrong";
    const list = Array.isArray(problems) ? problems : Object.entries(problems).map(([k, v]) => `${k}: ${v}`);
    return `${data.error}: ${list.join("; ")}`;
  }

  // ---- the profile ----------------------------------------------------------------------------

  function showProfile() {
    const s = pending || view.setting;
    $("#summary").textContent = pending ? describe(s) : view.summary;
    $("#inherited").hidden = !!pending || !view.inherited;
    $("#unsaved").hidden = !pending;
    $("#save").disabled = !pending;
    $("#revert").disabled = !pending;
  }

  function status(text, kind) {
    const el = $("#status");
    el.textContent = text;
    el.className = "status" + (kind ? " " + kind : "");
  }

  // ---- the dialog -----------------------------------------------------------------------------

  function fillTargets() {
    const option = (t, label) => {
      const o = document.createElement("option");
      o.value = t.id;
      o.textContent = label;
      return o;
    };
    $("#to-colleagues").replaceChildren(...view.targets.colleagues.map((t) => option(t, `${t.name} (${t.id})`)));
    $("#to-departments").replaceChildren(...view.targets.departments.map((t) => option(t, `${t.name} — ${t.members.length} people`)));
  }

  function setSound(kind, file, info) {
    const box = $(`#${kind}-sound`);
    form.dataset[kind + "File"] = file || "";
    box.hidden = !file;
    if (file) {
      $(`#${kind}-audio`).src = `/api/announcements/${encodeURIComponent(file)}`;
      $(`#${kind}-info`).textContent = info || "";
    }
  }

  function openDialog() {
    const s = pending || view.setting;
    fillTargets();
    form.elements.action.value = s.action;
    form.elements.drop.value = s.drop || "busy";
    $("#to").value = s.to || (view.targets.colleagues[0] || view.targets.departments[0] || {}).id || "";
    $("#site-ring").textContent = view.site.ring_time;
    $("#ring_default").checked = s.ring_time == null;
    $("#ring_time").value = s.ring_time == null ? view.site.ring_time : s.ring_time;
    const a = s.announcement || { kind: "standard" };
    form.elements.ann.value = a.kind;
    setSound("custom", a.kind === "custom" ? a.file : null, "current recording");
    setSound("tts", a.kind === "tts" ? a.file : null, "current message");
    $("#tts-text").value = a.kind === "tts" ? a.text || "" : "";
    form.dataset.ttsText = a.kind === "tts" ? a.text || "" : "";
    $("#upload").value = "";
    dialogError(null);
    sync();
    dialog.showModal();
  }

  function sync() {
    const action = form.elements.action.value;
    const ann = form.elements.ann.value;
    $$("[data-when-action]").forEach((el) => { el.hidden = el.dataset.whenAction !== action; });
    $$("[data-when-ann]").forEach((el) => { el.hidden = el.dataset.whenAnn !== ann; });
    $("#ring_time").disabled = $("#ring_default").checked;
  }

  function dialogError(text) {
    const el = $("#dialog-error");
    el.hidden = !text;
    el.textContent = text || "";
  }

  function readDialog() {
    const action = form.elements.action.value;
    if (!action) throw new Error("choose what happens to the call");
    const ringDefault = $("#ring_default").checked;
    const ring = Number($("#ring_time").value);
    if (!ringDefault && !(Number.isInteger(ring) && ring >= 1 && ring <= 600)) {
      throw new Error("the ring time is a whole number of seconds from 1 to 600");
    }
    const s = { action, drop: form.elements.drop.value || "busy", to: null, ring_time: ringDefault ? null : ring,
                announcement: { kind: "standard", file: null, text: null } };
    if (action === "forward") {
      s.to = $("#to").value;
      if (!s.to) throw new Error("choose a colleague or a department");
      const kind = form.elements.ann.value || "standard";
      s.announcement.kind = kind;
      if (kind === "custom") {
        s.announcement.file = form.dataset.customFile;
        if (!s.announcement.file) throw new Error("upload a recording first");
      } else if (kind === "tts") {
        s.announcement.file = form.dataset.ttsFile;
        s.announcement.text = form.dataset.ttsText;
        if (!s.announcement.file) throw new Error("make the message from the text first");
      }
    }
    return s;
  }

  async function upload() {
    const file = $("#upload").files[0];
    if (!file) return;
    const max = Number($("#max-mib").textContent) * 1024 * 1024;
    if (file.size > max) {
      dialogError(`the file is too large: the limit is ${$("#max-mib").textContent} MiB`);
      return;
    }
    dialogError(null);
    setSound("custom", null);
    $("#apply").disabled = true;
    $("#custom-info").textContent = "";
    const data = new FormData();
    data.append("file", file);
    status("Uploading…");
    const r = await call("POST", "/api/announcements", data);
    $("#apply").disabled = false;
    status("");
    if (r.status !== 200) {
      dialogError(`The recording was not accepted: ${explain(r.data)}`);
      $("#upload").value = "";
      return;
    }
    setSound("custom", r.data.file, `uploaded, ${r.data.seconds} s`);
  }

  async function makeTts() {
    const text = $("#tts-text").value.trim();
    if (!text) { dialogError("write the text of the message first"); return; }
    dialogError(null);
    $("#tts-make").disabled = true;
    $("#apply").disabled = true;
    const r = await call("POST", "/api/announcements/tts", { text, language: $("#tts-lang").value });
    $("#tts-make").disabled = false;
    $("#apply").disabled = false;
    if (r.status !== 200) { dialogError(`The message was not made: ${explain(r.data)}`); return; }
    form.dataset.ttsText = r.data.text;
    setSound("tts", r.data.file, `made, ${r.data.seconds} s`);
  }

  function apply() {
    let s;
    try { s = readDialog(); } catch (e) { dialogError(e.message[0].toUpperCase() + e.message.slice(1) + "."); return; }
    pending = s;
    dialog.close();
    status("Press Save to keep the change.");
    showProfile();
  }

  async function save() {
    if (!pending) return;
    $("#save").disabled = true;
    status("Saving…");
    const r = await call("PUT", `/api/employees/${encodeURIComponent(view.extension)}/no-answer`,
                         { version: view.version, setting: pending });
    if (r.status === 200) {
      view = r.data;
      pending = null;
      showProfile();
      status("Saved. The next call follows the new setting.", "ok");
      return;
    }
    $("#save").disabled = false;
    if (r.status === 409) {
      status(r.data.error, "error");
      const link = document.createElement("a");
      link.href = location.pathname;
      link.textContent = " Reload";
      $("#status").append(link);
    } else {
      status(explain(r.data), "error");
    }
  }

  // ---- wiring ---------------------------------------------------------------------------------

  $("#configure").addEventListener("click", openDialog);
  $("#apply").addEventListener("click", apply);
  $$("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));
  form.addEventListener("change", (e) => {
    if (e.target.id === "upload") upload();
    sync();
  });
  $("#tts-text").addEventListener("input", () => {
    // The message on file says the text it was made from: an edited text needs a new one.
    if ($("#tts-text").value.trim() !== form.dataset.ttsText) setSound("tts", null);
  });
  $("#tts-make").addEventListener("click", makeTts);
  $("#tts-lang").addEventListener("change", () => { $("#standard-audio").src = `/api/sounds/standard/${$("#tts-lang").value}`; });
  $("#save").addEventListener("click", save);
  $("#revert").addEventListener("click", () => { pending = null; showProfile(); status(""); });
  window.addEventListener("beforeunload", (e) => { if (pending) { e.preventDefault(); e.returnValue = ""; } });
  showProfile();
})();
