// The console's shared script (no framework, no build step). Pages work without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A <select data-autosubmit> submits its form when changed (the button stays for keyboards).
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // A form is sent once: its submit buttons are disabled while the next page loads.
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", () => {
      for (const b of form.querySelectorAll("button[type=submit]")) {
        setTimeout(() => { b.disabled = true; }, 0);
      }
    });
  }
});
// Back to a page from the browser's cache: its buttons work again.
window.addEventListener("pageshow", () => {
  for (const b of document.querySelectorAll("form button[type=submit]")) b.disabled = false;
});
