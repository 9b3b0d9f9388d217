// The administrator's list of employees: one page of at most 50 at a time, found by name,
// number or department as they type (GET /api/employees?q=&page=). The list the server drew
// works without this script too (the search box is a form; the pages are links).
"use strict";
(function () {
  const t = (s) => (window.PBX_T && window.PBX_T[s]) || s;
  const fmt = (s, ...args) => s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)]));
  const box = document.getElementById("people");
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  const current = box.dataset.extension;
  let asked = 0; // the latest request: an older answer arriving late is dropped
  let timer = null;
  let page = 1;

  function person(p) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/employees/${encodeURIComponent(p.extension)}`;
    a.className = "person" + (p.extension === current ? " active" : "");
    const avatar = document.createElement("span");
    avatar.className = "avatar small";
    avatar.textContent = p.initials;
    const text = document.createElement("span");
    text.className = "person-text";
    const name = document.createElement("span");
    name.className = "person-name";
    name.textContent = p.name;
    const sub = document.createElement("span");
    sub.className = "person-sub";
    sub.title = p.summary;
    sub.textContent = `${p.extension} · ${p.summary}`;
    text.append(name, sub);
    a.append(avatar, text);
    li.append(a);
    return li;
  }

  function link(el, query, to) {
    el.href = `?q=${encodeURIComponent(query)}&page=${to}`;
  }

  async function show(query, wanted) {
    const mine = ++asked;
    let data;
    try {
      const r = await fetch(`/api/employees?q=${encodeURIComponent(query)}&page=${wanted}`,
                            { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) return; // e.g. 429: the list the page has stays
      data = await r.json();
    } catch (e) {
      return;
    }
    if (mine !== asked) return;
    page = data.page;
    $("people-list").replaceChildren(...data.employees.map(person));
    $("people-count").textContent = data.total;
    $("people-none").hidden = data.employees.length > 0;
    $("people-pages").hidden = data.pages < 2;
    $("people-page").textContent = fmt(t("Page {0} of {1}"), data.page, data.pages);
    $("people-prev").hidden = data.page < 2;
    $("people-next").hidden = data.page >= data.pages;
    link($("people-prev"), query, data.page - 1);
    link($("people-next"), query, data.page + 1);
  }

  const input = $("people-q");
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => show(input.value.trim(), 1), 200);
  });
  input.form.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(timer); show(input.value.trim(), 1); });
  $("people-prev").addEventListener("click", (e) => { e.preventDefault(); show(input.value.trim(), Math.max(1, page - 1)); });
  $("people-next").addEventListener("click", (e) => { e.preventDefault(); show(input.value.trim(), page + 1); });
})();
