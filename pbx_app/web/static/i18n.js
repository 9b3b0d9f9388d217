// The page's messages in the reader's language, embedded by the server as JSON (no inline
// script: the CSP forbids it). Scripts say t("English text") and get it translated.
"use strict";
(function () {
  const el = document.getElementById("pbx-t");
  try { window.PBX_T = el ? JSON.parse(el.textContent) : {}; } catch (e) { window.PBX_T = {}; }
})();
