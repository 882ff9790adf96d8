// Copy buttons (templates and members pages): <button data-copy="ID"> copies the text of the
// element with that id. The clipboard API needs a secure context (https or localhost); elsewhere
// the text is selected and copied with execCommand, and if even that fails the text stays
// selected with a word on how to copy it by hand. The buttons are hidden until this script runs.
"use strict";

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

async function copyText(element) {
  const text = element.textContent;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) { /* fall back below */ }
  }
  selectText(element);
  try {
    return document.execCommand("copy");
  } catch (e) {
    return false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("copy-status");
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const done = await copyText(source);
      if (status) {
        status.textContent = done
          ? "Copied: " + button.textContent.replace(/^Copy /, "") + "."
          : "Could not copy: the text is selected, copy it with your device's copy command.";
      }
    });
  }
});
