// Add device: copy the setup link, and follow the provisioning request (long poll) until the
// device is claimed, refused or the link expires; then show the result page (naming the device,
// or what went wrong with a new link). The page works without it: "Check now".
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const wizard = document.getElementById("wizard");
  if (!wizard) return;
  const statusUrl = wizard.dataset.statusUrl, resultUrl = wizard.dataset.resultUrl;
  const text = document.getElementById("progress-text");

  const copy = document.getElementById("copy-link");
  copy.addEventListener("click", async () => {
    const input = document.getElementById(copy.dataset.copy);
    const done = document.getElementById("copy-done");
    try {
      await navigator.clipboard.writeText(input.value);  // https or localhost only
      done.textContent = "Copied.";
    } catch (e) {
      input.focus();
      input.select();  // a plain-http console: the older way, or the person copies it
      done.textContent = document.execCommand && document.execCommand("copy")
        ? "Copied." : "Selected: copy it with your phone's menu.";
    }
  });

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let offline = false;
  (async () => {
    for (;;) {
      let reply;
      // A request in flight when the phone leaves its WiFi can hang instead of failing (the
      // reply is lost, nothing tells the browser): give each one up after 15 s.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 15000);
      try {
        const r = await fetch(statusUrl + "?wait=10",
          {cache: "no-store", credentials: "same-origin", signal: abort.signal});
        // signed out, or the request is gone: the result page says so (or asks to sign in)
        if (r.redirected || (r.status >= 400 && r.status < 500)) { location.assign(resultUrl); return; }
        if (r.ok) reply = await r.json();
      } catch (e) {
        // this phone is on the device's network (no way to the console): wait until it is back
        if (!offline) text.textContent = "Waiting for this phone to be back on your WiFi…";
        offline = true;
        await sleep(2000);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (!reply) { await sleep(2000); continue; }
      if (offline) {
        offline = false;
        // back from the device's network and still pending: the phone left before the end
        const ap = document.getElementById("ap-name").textContent;
        text.textContent = reply.status !== "pending" ? reply.what
          : "This phone is back, but the device is not online yet. If its page did not say " +
            "it is done, join " + ap + " again and open the setup link: it still works.";
      }
      if (reply.status !== "pending") { location.assign(resultUrl); return; }
    }
  })();
});
