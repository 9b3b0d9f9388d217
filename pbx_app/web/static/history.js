// History: the filters apply as soon as a box is ticked; a voicemail message that cannot be
// played says why instead of a silent player.
"use strict";
(function () {
  const t = (s) => (window.PBX_T && window.PBX_T[s]) || s;
  const form = document.getElementById("filters");
  if (form) {
    form.querySelectorAll("input[type=checkbox], select").forEach((el) =>
      el.addEventListener("change", () => form.submit()));
  }
  document.querySelectorAll("audio.voicemail-audio").forEach((audio) => {
    audio.addEventListener("error", () => {
      const note = document.createElement("span");
      note.className = "muted";
      note.textContent = t("The message cannot be played (it may have been deleted from the mailbox).");
      audio.replaceWith(note);
    });
  });
})();
