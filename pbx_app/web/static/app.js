// The profile page. Call reception: the Configure dialog (Apply keeps the change on the page),
// then Save sends it with the version the page was built from. Schedule and absences, and
// notices: forms of their own, each saved the same way. Every save answers the whole profile,
// with its new version.
"use strict";

// The page's texts in the reader's language (window.PBX_T, from the catalogs); English as is.
const t = (s) => (window.PBX_T && window.PBX_T[s]) || s;
// fmt(t("After {0} s: {1}"), 20, "…") fills the blanks in.
const fmt = (s, ...args) => s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)]));

(function () {
  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => Array.from(document.querySelectorAll(sel));
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let view = JSON.parse($("#state").textContent);
  const pending = {}; // slot → setting (null: same as no answer), applied in the dialog, not saved
  let slot = "on_no_answer"; // the slot the dialog edits
  const dialog = $("#dialog");
  const form = $("#dialog-form");
  const ANN = { standard: t("standard message"), custom: t("custom recording"), tts: t("message made from text"), none: t("no message") };
  const TITLES = {
    on_no_answer: t("If the employee does not answer"), on_busy: t("If the line is busy"),
    on_unreachable: t("If the phone is unreachable"), on_absent: t("While away"),
  };
  const DAYS = [t("Monday"), t("Tuesday"), t("Wednesday"), t("Thursday"), t("Friday"), t("Saturday"), t("Sunday")];
  const RECEPTION = ["on_no_answer", "on_busy", "on_unreachable"];

  // setting.py's _what, word for word: the summary reads the same before and after a save.
  function what(s, fallback) {
    if (s.action === "forward") {
      const c = view.targets.colleagues.find((x) => x.id === s.to);
      const d = view.targets.departments.find((x) => x.id === s.to);
      const who = c ? `${c.name} (${c.id})` : d ? fmt(t("department {0}"), d.name) : s.to === "mobile" ? t("my mobile") : s.to;
      if (fallback) return fmt(t("forward to {0}"), who);
      return fmt(t("forward to {0}, {1}"), who, ANN[s.announcement.kind]);
    }
    if (s.action === "callback") {
      const then = (s.callback && s.callback.then) || { action: "drop", drop: "busy" };
      return fmt(t("offer a callback, else {0}"), what(then, true));
    }
    if (s.action === "voicemail") return t("forward to voicemail");
    if (s.drop === "message") return t("play a message, then hang up");
    return t("hang up with a busy tone");
  }

  function describe(s) {
    return fmt(t("After {0} s: {1}"), s.ring_time || view.site.ring_time, what(s));
  }

  function describeSlot(s) {
    if (s === null) return t("Same as no answer");
    const w = what(s);
    return w[0].toUpperCase() + w.slice(1);
  }

  const current = (name) => (name in pending ? pending[name]
    : name === "on_no_answer" ? view.setting : view.slots[name].setting);

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
      return { status: 0, data: { error: t("the server cannot be reached; try again") } };
    }
    let data = {};
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    return { status: response.status, data };
  }

  function explain(data) {
    const problems = data.problems;
    if (!problems) return data.error || t("something went wrong");
    // A field's problem in the reader's language when the page knows it (REFUSED below).
    const list = Array.isArray(problems) ? problems : Object.entries(problems).map(([k, v]) => `${k}: ${t(v)}`);
    return `${data.error}: ${list.join("; ")}`;
  }

  function statusOf(id, text, kind) {
    const el = $(id);
    el.textContent = text;
    el.className = "status" + (kind ? " " + kind : "");
  }

  // A save of one part of the profile; the answer is the whole profile.
  async function put(what, body, statusId) {
    statusOf(statusId, t("Saving…"));
    const r = await call("PUT", `/api/employees/${encodeURIComponent(view.extension)}/${what}`,
                         { version: view.version, ...body });
    if (r.status === 200) {
      view = r.data;
      statusOf(statusId, t("Saved. The next call follows the new setting."), "ok");
      return true;
    }
    if (r.status === 409) {
      statusOf(statusId, r.data.error, "error");
      const link = document.createElement("a");
      link.href = location.pathname;
      link.textContent = " " + t("Reload");
      $(statusId).append(link);
    } else {
      statusOf(statusId, explain(r.data), "error");
    }
    return false;
  }

  // ---- tabs -----------------------------------------------------------------------------------

  function showTab(name) {
    $$("[data-tab]").forEach((b) => {
      b.classList.toggle("active", b.dataset.tab === name);
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
    });
    $$("[data-pane]").forEach((p) => { p.hidden = p.dataset.pane !== name; });
  }

  // ---- call reception -------------------------------------------------------------------------

  function showReception() {
    $("#summary").textContent = describe(current("on_no_answer"));
    $("#inherited").hidden = "on_no_answer" in pending || !view.inherited;
    $("#unsaved").hidden = !("on_no_answer" in pending);
    for (const name of ["on_busy", "on_unreachable", "on_absent"]) {
      $(`#summary-${name}`).textContent = describeSlot(current(name));
      $(`#unsaved-${name}`).hidden = !(name in pending);
    }
    const any = RECEPTION.some((name) => name in pending);
    $("#save").disabled = !any;
    $("#revert").disabled = !any;
  }

  async function saveReception() {
    const body = {};
    RECEPTION.forEach((name) => { if (name in pending) body[name] = pending[name]; });
    if (!Object.keys(body).length) return;
    $("#save").disabled = true;
    if (await put("reception", body, "#status")) RECEPTION.forEach((name) => delete pending[name]);
    showReception();
  }

  // ---- the dialog -----------------------------------------------------------------------------

  function fillTargets() {
    const option = (x, label) => {
      const o = document.createElement("option");
      o.value = x.id;
      o.textContent = label;
      return o;
    };
    $("#to-colleagues").replaceChildren(...view.targets.colleagues.map((x) => option(x, `${x.name} (${x.id})`)));
    $("#to-departments").replaceChildren(...view.targets.departments.map(
      (x) => option(x, fmt(t("{0} — {1} people"), x.name, x.members.length))));
    $("#then-colleagues").replaceChildren(...view.targets.colleagues.map((x) => option(x, `${x.name} (${x.id})`)));
    $("#then-departments").replaceChildren(...view.targets.departments.map(
      (x) => option(x, fmt(t("{0} — {1} people"), x.name, x.members.length))));
  }

  // The callback's defaults are the policy's (model.CallbackSettings); its bounds the loader's.
  const CALLBACK = { attempts: 3, retry_after: 60, expires_after: 3600 };
  const BOUNDS = { attempts: [1, 10], retry_after: [1, 86400], expires_after: [1, 604800] };
  const NUMBER_INPUTS = { attempts: "#cb-attempts", retry_after: "#cb-retry", expires_after: "#cb-expires" };

  // How clients are dialled back: the action's own route as the file has it, else the site's.
  function callbackRoute() {
    const saved = slot === "on_no_answer" ? view.setting : view.slots[slot].setting;
    return (saved && saved.callback && saved.callback.route) || view.site.callback_route || null;
  }

  function showRoute() {
    const route = callbackRoute();
    const note = $("#cb-route");
    note.textContent = route ? fmt(t("Clients are called back through {0}."), route)
      : t("A callback needs a route for calling clients (site.callback_route in the policy file); ask an administrator to set it.");
    note.classList.toggle("error", !route);
  }

  function standardSound() {
    const which = form.elements.action.value === "callback" ? "?sound=callback" : "";
    $("#standard-audio").src = `/api/sounds/standard/${$("#tts-lang").value}${which}`;
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

  function openDialog(name) {
    slot = name;
    const own = current(name);
    const s = own || view.setting;
    $("#dialog-title").textContent = TITLES[name];
    $("#same-choice").hidden = name === "on_no_answer";
    $("#ring-group").hidden = name !== "on_no_answer";
    fillTargets();
    form.elements.action.value = own === null ? "same" : s.action;
    form.elements.drop.value = s.drop || "busy";
    $("#to").value = s.to || (view.targets.colleagues[0] || view.targets.departments[0] || {}).id || "";
    $("#site-ring").textContent = view.site.ring_time;
    $("#ring_default").checked = s.ring_time == null;
    $("#ring_time").value = s.ring_time == null ? view.site.ring_time : s.ring_time;
    const a = s.announcement || { kind: "standard" };
    form.elements.ann.value = a.kind;
    setSound("custom", a.kind === "custom" ? a.file : null, t("current recording"));
    setSound("tts", a.kind === "tts" ? a.file : null, t("current message"));
    $("#tts-text").value = a.kind === "tts" ? a.text || "" : "";
    form.dataset.ttsText = a.kind === "tts" ? a.text || "" : "";
    $("#upload").value = "";
    const cb = s.callback || { then: { action: "forward", to: null, drop: "busy" }, ...CALLBACK };
    const th = cb.then;
    form.elements.then.value = th.action === "drop" ? th.drop || "busy" : th.action;
    $("#then-to").value = th.to || $("#to").value;
    for (const [key, sel] of Object.entries(NUMBER_INPUTS)) $(sel).value = cb[key];
    showRoute();
    dialogError(null);
    sync();
    standardSound();
    dialog.showModal();
  }

  function sync() {
    const action = form.elements.action.value;
    if (action === "callback" && form.elements.ann.value === "none") form.elements.ann.value = "standard";
    const ann = form.elements.ann.value;
    $$("[data-when-action]").forEach((el) => { el.hidden = !el.dataset.whenAction.split(" ").includes(action); });
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
    if (!action) throw new Error(t("choose what happens to the call"));
    if (action === "same") return null;
    const ringDefault = $("#ring_default").checked || slot !== "on_no_answer";
    const ring = Number($("#ring_time").value);
    if (!ringDefault && !(Number.isInteger(ring) && ring >= 1 && ring <= 600)) {
      throw new Error(t("the ring time is a whole number of seconds from 1 to 600"));
    }
    const s = { action, drop: form.elements.drop.value || "busy", to: null, ring_time: ringDefault ? null : ring,
                announcement: { kind: "standard", file: null, text: null } };
    if (action === "callback") s.callback = readCallback();
    if (action === "forward" || action === "callback") {
      if (action === "forward") {
        s.to = $("#to").value;
        if (!s.to) throw new Error(t("choose a colleague or a department"));
      }
      let kind = form.elements.ann.value || "standard";
      if (action === "callback" && kind === "none") kind = "standard"; // an offer is never silent
      s.announcement.kind = kind;
      if (kind === "custom") {
        s.announcement.file = form.dataset.customFile;
        if (!s.announcement.file) throw new Error(t("upload a recording first"));
      } else if (kind === "tts") {
        s.announcement.file = form.dataset.ttsFile;
        s.announcement.text = form.dataset.ttsText;
        if (!s.announcement.file) throw new Error(t("make the message from the text first"));
      }
    }
    return s;
  }

  function readCallback() {
    if (!callbackRoute()) {
      throw new Error(t("a callback needs a route for calling clients (site.callback_route); ask an administrator"));
    }
    const choice = form.elements.then.value || "busy";
    const then = choice === "message" || choice === "busy" ? { action: "drop", drop: choice, to: null }
      : { action: choice, drop: "busy", to: choice === "forward" ? $("#then-to").value : null };
    if (then.action === "forward" && !then.to) throw new Error(t("choose a colleague or a department"));
    const cb = { then, route: callbackRoute() };
    for (const [key, sel] of Object.entries(NUMBER_INPUTS)) {
      const n = Number($(sel).value);
      const [low, high] = BOUNDS[key];
      if (!(Number.isInteger(n) && n >= low && n <= high)) {
        throw new Error(fmt(t("{0}: a whole number from {1} to {2}"), $(sel).parentElement.firstChild.textContent.trim(), low, high));
      }
      cb[key] = n;
    }
    return cb;
  }

  async function upload() {
    const file = $("#upload").files[0];
    if (!file) return;
    const max = Number($("#max-mib").textContent) * 1024 * 1024;
    if (file.size > max) {
      dialogError(fmt(t("the file is too large: the limit is {0} MiB"), $("#max-mib").textContent));
      return;
    }
    dialogError(null);
    setSound("custom", null);
    $("#apply").disabled = true;
    $("#custom-info").textContent = "";
    const data = new FormData();
    data.append("file", file);
    statusOf("#status", t("Uploading…"));
    const r = await call("POST", "/api/announcements", data);
    $("#apply").disabled = false;
    statusOf("#status", "");
    if (r.status !== 200) {
      dialogError(fmt(t("The recording was not accepted: {0}"), explain(r.data)));
      $("#upload").value = "";
      return;
    }
    setSound("custom", r.data.file, fmt(t("uploaded, {0} s"), r.data.seconds));
  }

  async function makeTts() {
    const text = $("#tts-text").value.trim();
    if (!text) { dialogError(t("write the text of the message first")); return; }
    dialogError(null);
    $("#tts-make").disabled = true;
    $("#apply").disabled = true;
    const r = await call("POST", "/api/announcements/tts", { text, language: $("#tts-lang").value });
    $("#tts-make").disabled = false;
    $("#apply").disabled = false;
    if (r.status !== 200) { dialogError(fmt(t("The message was not made: {0}"), explain(r.data))); return; }
    form.dataset.ttsText = r.data.text;
    setSound("tts", r.data.file, fmt(t("made, {0} s"), r.data.seconds));
  }

  function apply() {
    let s;
    try { s = readDialog(); } catch (e) { dialogError(e.message[0].toUpperCase() + e.message.slice(1) + "."); return; }
    pending[slot] = s;
    dialog.close();
    const where = slot === "on_absent" ? "#status-schedule" : "#status";
    statusOf(where, t("Press Save to keep the change."));
    showReception();
  }

  // ---- schedule and absences ------------------------------------------------------------------

  function rangeInput(text) {
    const el = $("#range-template").content.firstElementChild.cloneNode(true);
    const [from, to] = (text || "-").split("-");
    el.querySelector(".from").value = from;
    el.querySelector(".to").value = to;
    el.querySelector(".remove").addEventListener("click", () => el.remove());
    return el;
  }

  function dayRow(i, ranges) {
    const tr = document.createElement("tr");
    const name = document.createElement("th");
    name.textContent = DAYS[i];
    const cell = document.createElement("td");
    cell.className = "ranges";
    ranges.forEach((r) => cell.append(rangeInput(r)));
    const add = document.createElement("button");
    add.type = "button";
    add.className = "btn-link add-range";
    add.textContent = t("add hours");
    add.addEventListener("click", () => cell.append(rangeInput(cell.children.length ? "" : "09:00-18:00")));
    const tools = document.createElement("td");
    tools.append(add);
    tr.append(name, cell, tools);
    return tr;
  }

  function absenceRow(a) {
    const tr = $("#absence-template").content.firstElementChild.cloneNode(true);
    for (const key of ["from", "to"]) {
      const input = tr.querySelector("." + key);
      if (a[key].includes(" ")) input.type = "text"; // a time of day too, as the sysadmin wrote it
      input.value = a[key];
    }
    const known = a.reason === "vacation" || a.reason === "sick";
    tr.querySelector(".reason").value = known ? a.reason : "other";
    const other = tr.querySelector(".other");
    other.value = known || a.reason === "absent" ? "" : a.reason;
    const syncReason = () => { other.hidden = tr.querySelector(".reason").value !== "other"; };
    tr.querySelector(".reason").addEventListener("change", syncReason);
    tr.querySelector(".remove").addEventListener("click", () => { tr.remove(); syncAbsences(); });
    syncReason();
    return tr;
  }

  function syncAbsences() {
    $("#no-absences").hidden = $("#absences").children.length > 0;
  }

  function syncHours() {
    $("#hours-editor").hidden = document.querySelector("input[name=hours-mode]:checked").value !== "schedule";
  }

  function showNow() {
    const n = view.now;
    $("#now").textContent = n.working ? t("Now: at work, calls ring the phone.")
      : n.rule === "absence" ? t("Now: away (absence), the phone is not rung.")
        : t("Now: out of working hours, the phone is not rung.");
    $("#now").className = "now " + (n.working ? "ok" : "away");
  }

  function showSchedule() {
    const hours = view.hours;
    document.querySelector(`input[name=hours-mode][value=${hours ? "schedule" : "always"}]`).checked = true;
    const days = hours ? hours.days : [["09:00-18:00"], ["09:00-18:00"], ["09:00-18:00"], ["09:00-18:00"], ["09:00-18:00"], [], []];
    $("#week").replaceChildren(...days.map((ranges, i) => dayRow(i, ranges)));
    $("#timezone").value = (hours && hours.timezone) || "";
    $("#absences").replaceChildren(...view.absences.map(absenceRow));
    syncAbsences();
    syncHours();
    showNow();
    delete pending.on_absent;
    showReception();
  }

  const TIME = /^([01]?\d|2[0-3]):[0-5]\d$/;

  function readSchedule() {
    let hours = null;
    if (document.querySelector("input[name=hours-mode]:checked").value === "schedule") {
      const days = $$("#week tr").map((tr, i) => Array.from(tr.querySelectorAll(".range")).map((el) => {
        const from = el.querySelector(".from").value.trim();
        const to = el.querySelector(".to").value.trim();
        if (to !== "24:00" && !TIME.test(to)) throw new Error(fmt(t("{0}: the hours are HH:MM-HH:MM, e.g. 09:00-18:00"), DAYS[i]));
        if (!TIME.test(from)) throw new Error(fmt(t("{0}: the hours are HH:MM-HH:MM, e.g. 09:00-18:00"), DAYS[i]));
        if (from === to) throw new Error(fmt(t("{0}: a range cannot start and end at the same time"), DAYS[i]));
        return `${from}-${to}`;
      }));
      const zone = $("#timezone").value.trim();
      hours = { timezone: zone || null, days };
    }
    const absences = $$("#absences tr").map((tr) => {
      const from = tr.querySelector(".from").value.trim();
      const to = tr.querySelector(".to").value.trim() || from;
      if (!from) throw new Error(t("each absence needs its first day"));
      if (to < from) throw new Error(t("an absence cannot end before it starts"));
      const kind = tr.querySelector(".reason").value;
      const reason = kind === "other" ? tr.querySelector(".other").value.trim() || "absent" : kind;
      return { from, to, reason };
    });
    return { hours, absences, on_absent: current("on_absent") };
  }

  async function saveSchedule() {
    let body;
    try { body = readSchedule(); } catch (e) { statusOf("#status-schedule", e.message, "error"); return; }
    $("#save-schedule").disabled = true;
    if (await put("schedule", body, "#status-schedule")) showSchedule();
    $("#save-schedule").disabled = false;
  }

  function addAbsence() {
    const today = new Date().toISOString().slice(0, 10);
    $("#absences").append(absenceRow({ from: today, to: today, reason: "vacation" }));
    syncAbsences();
  }

  // ---- notices --------------------------------------------------------------------------------

  let recipients = [];

  function recipientLabel(id) {
    const c = view.targets.colleagues.find((x) => x.id === id);
    const d = view.targets.departments.find((x) => x.id === id);
    return c ? `${c.name} (${c.id})` : d ? fmt(t("department {0}"), d.name) : id;
  }

  function showRecipients() {
    const list = $("#recipients");
    if (!list) return;
    list.replaceChildren(...recipients.map((id, i) => {
      const li = document.createElement("li");
      li.className = "chip";
      li.textContent = recipientLabel(id);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "close";
      remove.setAttribute("aria-label", t("Remove"));
      remove.textContent = "×";
      remove.addEventListener("click", () => { recipients.splice(i, 1); showRecipients(); });
      li.append(remove);
      return li;
    }));
  }

  function showNotices() {
    $("#email").value = view.notices.email || "";
    recipients = view.notices.voicemail_to.slice();
    if ($("#recipients")) {
      const option = (x, label) => {
        const o = document.createElement("option");
        o.value = x.id;
        o.textContent = label;
        return o;
      };
      $("#pick-colleagues").replaceChildren(...view.targets.colleagues.map((x) => option(x, `${x.name} (${x.id})`)));
      $("#pick-departments").replaceChildren(...view.targets.departments.map((x) => option(x, x.name)));
    }
    showRecipients();
  }

  function addRecipient() {
    const address = $("#recipient-address").value.trim();
    const id = address || $("#recipient-pick").value;
    if (!id) return;
    if (recipients.length >= 20) { statusOf("#status-notices", t("at most 20 recipients"), "error"); return; }
    if (!recipients.includes(id)) recipients.push(id);
    $("#recipient-address").value = "";
    $("#recipient-pick").value = "";
    statusOf("#status-notices", t("Press Save to keep the change."));
    showRecipients();
  }

  async function saveNotices() {
    $("#save-notices").disabled = true;
    const body = { email: $("#email").value.trim() || null, voicemail_to: view.mailbox ? recipients : [] };
    if (await put("notices", body, "#status-notices")) showNotices();
    $("#save-notices").disabled = false;
  }

  // ---- mobile ---------------------------------------------------------------------------------

  // The server's words for a refused mobile (web/settings/no_answer.py OUTSIDE_REFUSED, mobile.py),
  // here so that the page has them in the reader's language: explain() looks each problem up.
  const REFUSED = [
    t("an administrator has turned off forwarding your calls outside the office"),
    t("enter your mobile number first"),
    t("the office has no line for calls outside yet; ask an administrator"),
    t("the office may not call this number; ask an administrator which numbers it may call"),
    t("a telephone number such as +7 900 123-45-67, or empty"),
  ];
  void REFUSED;

  function showMobile() {
    const m = view.mobile;
    $("#mobile").value = m.mobile || "";
    $$("input[name=ring-mobile]").forEach((r) => { r.checked = r.value === m.ring; });
    $("#mobile-after").value = m.ring === "after" ? m.after : "";
    if ($("#external-forwarding")) $("#external-forwarding").checked = m.external_forwarding;
    $("#mobile-barred").hidden = m.external_forwarding || !!$("#external-forwarding");
    // Not a choice without a mobile, or where outside forwards are barred (disabled as well:
    // some browsers show a hidden <option>).
    const toMobile = $("#to-mobile");
    toMobile.hidden = toMobile.disabled = !m.mobile || !m.external_forwarding;
  }

  async function saveMobile() {
    $("#save-mobile").disabled = true;
    const chosen = $$("input[name=ring-mobile]").find((r) => r.checked);
    const body = { mobile: $("#mobile").value.trim() || null, ring: chosen ? chosen.value : "off",
                   after: Number($("#mobile-after").value) || 0 };
    if ($("#external-forwarding")) body.external_forwarding = $("#external-forwarding").checked;
    if (await put("mobile", body, "#status-mobile")) showMobile();
    $("#save-mobile").disabled = false;
  }

  // ---- the spoken name (api/names): what whoever answers a forwarded call hears -----------------

  const nameUrl = () => `/api/names/${encodeURIComponent(view.extension)}`;

  function showName(n) {
    $("#name-state").textContent = n.kind === "recorded" ? t("your recording")
      : n.kind === "made" ? fmt(t("made from \"{0}\""), n.said) : t("none: your extension's digits are said");
    $("#name-play").hidden = !n.url;
    if (n.url) $("#name-play").src = `${n.url}?v=${Date.now()}`;
    $("#name-remove").disabled = !n.kind;
  }

  async function loadName() {
    const r = await call("GET", nameUrl());
    if (r.status === 200) showName(r.data);
  }

  async function changeName(method, url, body) {
    statusOf("#status-name", t("Saving…"));
    const r = await call(method, url, body);
    if (r.status !== 200) { statusOf("#status-name", explain(r.data), "error"); return; }
    statusOf("#status-name", t("Saved. The next call follows the new setting."), "ok");
    showName(r.data);
  }

  async function uploadName() {
    const file = $("#name-upload").files[0];
    if (!file) return;
    const data = new FormData();
    data.append("file", file);
    await changeName("POST", nameUrl(), data);
    $("#name-upload").value = "";
  }

  // ---- wiring ---------------------------------------------------------------------------------

  $$("[data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $$("[data-slot]").forEach((b) => b.addEventListener("click", () => openDialog(b.dataset.slot)));
  $("#apply").addEventListener("click", apply);
  // A big company's page carries only some colleagues (view.targets.complete is false): the box
  // beside each picker asks the server for others, and what it finds joins that picker.
  function findColleagues(input) {
    let timer = null;
    let asked = 0;
    input.hidden = view.targets.complete !== false;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const mine = ++asked;
        const query = input.value.trim();
        if (!query) return;
        const r = await call("GET", `/api/employees/${encodeURIComponent(view.extension)}/colleagues?q=${encodeURIComponent(query)}`);
        if (mine !== asked || r.status !== 200) return;
        const group = document.getElementById(input.dataset.group);
        const select = group.closest("select");
        const known = new Set(view.targets.colleagues.map((x) => x.id));
        r.data.colleagues.filter((x) => !known.has(x.id)).forEach((x) => view.targets.colleagues.push(x));
        const chosen = select.value;
        const found = new Set(r.data.colleagues.map((x) => x.id));
        const option = (x) => {
          const o = document.createElement("option");
          o.value = x.id;
          o.textContent = `${x.name} (${x.id})`;
          return o;
        };
        group.replaceChildren(...view.targets.colleagues.filter((x) => found.has(x.id) || x.id === chosen).map(option));
        if (r.data.colleagues.length && !found.has(chosen)) select.value = r.data.colleagues[0].id;
        select.dispatchEvent(new Event("change", { bubbles: true }));
      }, 250);
    });
  }
  $$(".find-colleague").forEach(findColleagues);

  $$("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));
  form.addEventListener("change", (e) => {
    if (e.target.id === "upload") upload();
    if (e.target.name === "action") standardSound();
    sync();
  });
  $("#tts-text").addEventListener("input", () => {
    // The message on file says the text it was made from: an edited text needs a new one.
    if ($("#tts-text").value.trim() !== form.dataset.ttsText) setSound("tts", null);
  });
  $("#tts-make").addEventListener("click", makeTts);
  $("#tts-lang").addEventListener("change", standardSound);
  $("#save").addEventListener("click", saveReception);
  $("#revert").addEventListener("click", () => {
    RECEPTION.forEach((name) => delete pending[name]);
    showReception();
    statusOf("#status", "");
  });
  $$("input[name=hours-mode]").forEach((r) => r.addEventListener("change", syncHours));
  $("#add-absence").addEventListener("click", addAbsence);
  $("#save-schedule").addEventListener("click", saveSchedule);
  $("#revert-schedule").addEventListener("click", () => { showSchedule(); statusOf("#status-schedule", ""); });
  $("#save-notices").addEventListener("click", saveNotices);
  $("#save-mobile").addEventListener("click", async () => { await saveMobile(); loadName(); });
  $("#name-upload").addEventListener("change", uploadName);
  $("#name-tts").addEventListener("click", () => changeName("POST", `${nameUrl()}/tts`));
  $("#name-remove").addEventListener("click", () => changeName("DELETE", nameUrl()));
  $("#mobile-after").addEventListener("focus", () => { $("input[name=ring-mobile][value=after]").checked = true; });
  if ($("#add-recipient")) $("#add-recipient").addEventListener("click", addRecipient);
  window.addEventListener("beforeunload", (e) => { if (Object.keys(pending).length) { e.preventDefault(); e.returnValue = ""; } });
  if (location.hash.length > 1 && $(`[data-tab="${location.hash.slice(1)}"]`)) showTab(location.hash.slice(1));
  showSchedule();
  showNotices();
  showMobile();
  loadName();
  showReception();
})();
