// Add device over Bluetooth LE (Web Bluetooth: Chrome on Android and on computers): the phone
// speaks Blynk.Inject to the device (docs/ble.md, the messages of wire/inject.py) and stays on
// its own network. info (the template must be this page's), ifs, scan, then set (WiFi, the
// page's provisioning token, the cloud's host) and connect, following status to connected or a
// net_fail/cloud_fail/connect_fail in words; the page's long poll (add_device.js) then sees the
// claim and asks for the device's name, as after the WiFi steps.
// Messages: one JSON object per write to RX and per notification on TX (Blynk's library and our
// agent never split one), so a notification that is not one whole object was cut by a small
// MTU: it is counted and dropped, and a reply that never comes whole says so.
"use strict";

(() => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const REPLY_MS = 10000; // a device's answer to info, ifs, set
  const SCAN_MS = 30000; // a WiFi scan takes a few seconds
  const CONNECT_MS = 150000; // a whole attempt: about 50 s network + 50 s cloud, with margin
  const MAX_MESSAGES = 200; // more for one request: the device misbehaves

  class Failed extends Error {
    constructor(what, todo) {
      super(what);
      this.what = what;
      this.todo = todo || "";
    }
  }

  // One GATT connection to the Inject service: writes RX, queues TX's messages.
  class Link {
    constructor(device, uuids) {
      this.device = device;
      this.uuids = uuids;
      this.queue = [];
      this.cut = 0; // notifications that were not one whole JSON object
      this.closed = true;
      this.waiter = null;
      this.onValue = (event) => this.received(event.target.value);
      device.addEventListener("gattserverdisconnected", () => { this.closed = true; this.wake(); });
    }

    async open() {
      const server = await this.device.gatt.connect();
      const service = await server.getPrimaryService(this.uuids.service);
      this.rx = await service.getCharacteristic(this.uuids.rx);
      this.tx = await service.getCharacteristic(this.uuids.tx);
      this.tx.removeEventListener("characteristicvaluechanged", this.onValue);
      this.tx.addEventListener("characteristicvaluechanged", this.onValue);
      await this.tx.startNotifications();
      this.closed = false;
    }

    received(view) {
      let message = null;
      try {
        message = JSON.parse(decoder.decode(view));
      } catch (e) {
        message = null;
      }
      if (!message || typeof message !== "object" || typeof message.t !== "string") {
        this.cut += 1;
        return;
      }
      this.queue.push(message);
      this.wake();
    }

    wake() {
      const waiter = this.waiter;
      this.waiter = null;
      if (waiter) waiter();
    }

    async send(message) {
      const data = encoder.encode(JSON.stringify(message));
      if (this.rx.properties.write) await this.rx.writeValueWithResponse(data);
      else await this.rx.writeValueWithoutResponse(data);
    }

    async next(ms) {
      const until = Date.now() + ms;
      while (!this.queue.length) {
        if (this.closed) {
          throw new Failed("The device ended the Bluetooth connection.",
            "Check it is still in setup mode and close by, then press Find devices nearby again.");
        }
        const left = until - Date.now();
        if (left <= 0) {
          if (this.cut) {
            throw new Failed("The device's answers arrive cut short: this phone's Bluetooth " +
              "connection carries too little in one message.",
              "Use the steps through the device's WiFi network below.");
          }
          throw new Failed("The device did not answer in time.",
            "Come closer, check it is still in setup mode, and press Find devices nearby again.");
        }
        await new Promise((resolve) => {
          this.waiter = resolve;
          setTimeout(resolve, left);
        });
      }
      return this.queue.shift();
    }

    // Send a request; the messages up to the first whose type is in `ends`.
    async ask(message, ends, ms) {
      this.queue.length = 0; // answers to an earlier request that came late
      await this.send(message);
      const got = [];
      while (got.length < MAX_MESSAGES) {
        const reply = await this.next(ms);
        got.push(reply);
        if (ends.includes(reply.t)) return got;
      }
      throw new Failed("The device sent too many messages.", "Restart the device and try again.");
    }

    close() {
      if (this.tx) this.tx.removeEventListener("characteristicvaluechanged", this.onValue);
      this.closed = true;
      if (this.device.gatt.connected) this.device.gatt.disconnect();
    }
  }

  // requestDevice's and connect's errors in words.
  function chooserFailure(error, deviceName) {
    const message = String(error && error.message || "");
    if (error && error.name === "NotFoundError" && /cancel/i.test(message)) {
      return new Failed("No device was chosen.",
        "Press Find devices nearby and choose " + deviceName + ". If it is not in the list, " +
        "power it on (or hold its button 10 s) and come closer.");
    }
    if (error && error.name === "NotFoundError") {
      return new Failed("Bluetooth is off or not available on this phone.",
        "Turn Bluetooth on and press Find devices nearby again, or use the steps through the " +
        "device's WiFi network below.");
    }
    if (error && (error.name === "SecurityError" || error.name === "NotAllowedError")) {
      return new Failed("The browser did not allow Bluetooth for this page.",
        "Allow Bluetooth for this site in the browser's settings, or use the steps through the " +
        "device's WiFi network below.");
    }
    return null;
  }

  function signal(rssi) {
    if (rssi >= -60) return "strong signal";
    if (rssi >= -70) return "good signal";
    return "weak signal";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("ble");
    if (!box) return;
    const $ = (id) => document.getElementById(id);
    if (!("bluetooth" in navigator)) {
      const none = $("ble-none");
      none.textContent = window.isSecureContext
        ? "Bluetooth setup is not available in this browser (Safari and every browser on " +
          "iPhone and iPad lack it): use the steps through the device's WiFi network below, " +
          "or open this page in Chrome on Android or on a computer."
        : "Bluetooth setup needs the console on https (the browser hides Bluetooth from this " +
          "page): use the steps through the device's WiFi network below.";
      none.hidden = false;
      return;
    }
    box.hidden = false;

    const data = box.dataset;
    const uuids = {service: data.service, rx: data.rx, tx: data.tx};
    const failures = JSON.parse(data.failures);
    const form = $("ble-network"), list = $("ble-networks"), status = $("ble-status");
    const findButton = $("ble-find"), steps = $("ble-steps");
    let link = null, info = null, networks = [], busy = false;

    const say = (text) => { status.textContent = text; };
    const STATES = {done: " (done)", active: " (in progress)", bad: " (failed)"};
    const step = (name, state) => {
      const item = $("ble-step-" + name);
      item.className = state || "";
      let said = item.querySelector(".visually-hidden"); // the mark, in words
      if (!said) {
        said = document.createElement("span");
        said.className = "visually-hidden";
        item.append(said);
      }
      said.textContent = STATES[state] || "";
      if (state === "active") item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    };
    const resetSteps = () => { for (const li of steps.children) step(li.id.slice(9), ""); };
    const showError = (failed) => {
      $("ble-what").textContent = failed.what;
      $("ble-todo").textContent = failed.todo;
      $("ble-error").hidden = false;
      say("");
    };
    const clearError = () => { $("ble-error").hidden = true; $("ble-form-error").textContent = ""; };

    // net_fail / cloud_fail / connect_fail: our code (the device's `code`, or Blynk's reason
    // words mapped by wire/inject.py's table) and its words (wire/errors.py).
    const failureWords = (message) => {
      let code = Number.isInteger(message.code) && message.code > 0 ? message.code : 0;
      if (!code) code = failures.reasons[message.t + " " + message.reason] || 0;
      if (!code) {
        code = message.t === "net_fail" ? (message.reason === "timeout" ? 701 : 704)
          : message.t === "cloud_fail" ? 705 : 700;
      }
      const words = failures.words[String(code)];
      return words ? new Failed(words[0], words[1])
        : new Failed("The device reported an unknown error (" + code + ").",
          "Check the device's log and try again.");
    };

    async function ensureLink() {
      if (link && !link.closed && link.device.gatt.connected) return;
      say("Connecting to " + (link ? link.device.name : "the device") + " over Bluetooth…");
      try {
        await link.open();
      } catch (error) {
        throw new Failed("Could not connect to " + (link.device.name || "the device") +
          " over Bluetooth (" + error.message + ").",
          "Come closer, check it is still in setup mode, and press Find devices nearby again.");
      }
    }

    function showNetworks() {
      list.replaceChildren();
      networks.forEach((n, i) => {
        const item = document.createElement("li");
        const radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "ble-ssid";
        radio.id = "ble-ssid-" + i;
        radio.value = n.ssid;
        const label = document.createElement("label");
        label.htmlFor = radio.id;
        const name = document.createElement("span");
        name.className = "ble-ssid";
        name.textContent = n.ssid;
        const about = document.createElement("span");
        about.className = "hint";
        about.textContent = signal(n.rssi) + ", " + (n.sec === "OPEN" ? "open" : "secured");
        label.append(name, " ", about);
        item.append(radio, label);
        list.append(item);
      });
      const first = list.querySelector("input");
      if (first) first.checked = true;
      else $("ble-ssid-other").checked = true;
      $("ble-hidden-field").hidden = !$("ble-ssid-other").checked;
      $("ble-code-field").hidden = !(info.caps || []).includes("oob_code");
      form.hidden = false;
    }

    async function find() {
      clearError();
      form.hidden = true;
      resetSteps();
      if (link) link.close();
      link = null;
      let device;
      try {
        device = await navigator.bluetooth.requestDevice({filters: [{services: [uuids.service]}]});
      } catch (error) {
        throw chooserFailure(error, data.deviceName) ||
          new Failed("Bluetooth failed: " + error.message + ".",
            "Try again; if it repeats, use the steps through the device's WiFi network below.");
      }
      steps.hidden = false;
      step("link", "active");
      link = new Link(device, uuids);
      await ensureLink();
      say("Connected to " + (device.name || "the device") + ". Asking what it is…");
      info = (await link.ask({t: "info"}, ["info"], REPLY_MS)).pop();
      if (info.tmpl_id && info.tmpl_id !== data.templateId && info.fw_type !== "DYNAMIC") {
        link.close();
        step("link", "bad");
        throw new Failed((device.name || "This device") + " is a device of another template: " +
          "its firmware says " + info.tmpl_id + ", not " + data.templateName + " (" +
          data.templateId + "). Nothing was sent to it.",
          "Choose the template its firmware was built for on the Add device page, or press " +
          "Find devices nearby and choose another device.");
      }
      step("link", "done");
      const interfaces = (await link.ask({t: "ifs"}, ["ifs_end"], REPLY_MS)).filter((m) => m.t === "if");
      const wifi = interfaces.some((i) => i.name === "wifi" && i.scan);
      const readyEth = interfaces.some((i) => i.name === "eth" && i.status === "ready");
      if (readyEth && !wifi) { // Blynk's rule: online already (a cable), it needs the token only
        say("The device is online already: it needs only this page's token.");
        await configure(null, "");
        return;
      }
      say("The device is looking for WiFi networks…");
      const seen = await link.ask({t: "scan"}, ["scan_end"], SCAN_MS);
      const best = new Map();
      for (const n of seen.filter((m) => m.t === "scan" && m.ssid)) {
        if (!best.has(n.ssid) || best.get(n.ssid).rssi < n.rssi) best.set(n.ssid, n);
      }
      networks = [...best.values()].sort((a, b) => b.rssi - a.rssi);
      showNetworks();
      say(networks.length
        ? "Choose your WiFi network (strongest first) and type its password."
        : "The device sees no WiFi network: type its name under Another network.");
    }

    async function configure(ssid, password) {
      await ensureLink();
      step("send", "active");
      const fields = ssid === null ? {if: "eth", blynk: data.token}
        : {if: "wifi", ssid: ssid, pass: password, blynk: data.token};
      if (data.host) fields.host = data.host; // no port: Blynk's set has none (the device's own)
      if (info.fw_type === "DYNAMIC") fields.templateId = data.templateId;
      const code = $("ble-code").value.trim();
      if (code && !$("ble-code-field").hidden) fields.code = code;
      const answer = (await link.ask(Object.assign({t: "set"}, fields), ["set_ok", "set_fail"], REPLY_MS)).pop();
      if (answer.t !== "set_ok") {
        step("send", "bad");
        if (answer.msg === "busy") {
          throw new Failed("The device is busy: another phone, or its own setup page, is " +
            "configuring it.", "Wait a minute (or until the other one is done) and try again.");
        }
        throw new Failed("The device refused the settings" + (answer.msg ? ": " + answer.msg : "") + ".",
          "Check the network name and password and try again.");
      }
      await link.send({t: "connect"});
      say(ssid === null ? "Token sent." : "Settings sent: the device joins " + ssid + "…");
      for (let n = 0; n < MAX_MESSAGES; n++) {
        let message;
        try {
          message = await link.next(CONNECT_MS);
        } catch (error) {
          if (!link.closed) throw error;
          // the device may leave Bluetooth as it goes online: the long poll still sees it
          throw new Failed("The Bluetooth connection ended while the device was connecting. " +
            "If it comes online, this page goes on by itself.",
            "If nothing happens within two minutes, press Find devices nearby and try again.");
        }
        const state = message.t === "status" ? message.s : message.t;
        if (state === "connecting" || state === "connecting_net") {
          step("send", "done");
          step("wifi", "active");
          if (ssid !== null) say("The device is joining " + ssid + "…");
        } else if (state === "net_status") {
          if (message.ip) say("The device joined " + (message.ssid || ssid) + " (address " + message.ip + ").");
        } else if (state === "connecting_cloud") {
          step("send", "done");
          step("wifi", "done");
          step("cloud", "active");
          say("The device joined the network and is connecting to the cloud…");
        } else if (state === "connected") {
          for (const name of ["send", "wifi", "cloud"]) step(name, "done");
          say("The device is online. Finishing in your account…");
          link.close();
          return;
        } else if (["net_fail", "cloud_fail", "connect_fail"].includes(state)) {
          step(state === "cloud_fail" ? "cloud" : state === "net_fail" ? "wifi" : "send", "bad");
          if (message.msg === "busy") {
            throw new Failed("The device is busy: another phone, or its own setup page, is " +
              "configuring it.", "Wait a minute (or until the other one is done) and try again.");
          }
          if (["code required", "wrong code", "code locked"].includes(message.msg)) {
            $("ble-code-field").hidden = false;
            throw new Failed(message.msg === "code locked"
              ? "Too many wrong codes: the device refuses for a minute."
              : "The device needs the code printed on its label" +
                (message.msg === "wrong code" ? ", and that one was wrong." : "."),
            "Type the code on the device's label and press Connect the device again.");
          }
          if (state === "connect_fail" && message.msg === "configuration invalid") {
            throw new Failed("The device refused the settings" +
              (message.detail ? ": " + message.detail : "") + ".",
              "Check the network name and password and try again.");
          }
          throw failureWords(message);
        }
      }
      throw new Failed("The device sent too many messages.", "Restart the device and try again.");
    }

    async function guarded(work) {
      if (busy) return;
      busy = true;
      findButton.disabled = true;
      form.querySelector("button").disabled = true;
      try {
        await work();
      } catch (error) {
        showError(error instanceof Failed ? error
          : new Failed("Bluetooth failed: " + (error && error.message) + ".",
            "Try again; if it repeats, use the steps through the device's WiFi network below."));
      } finally {
        busy = false;
        findButton.disabled = false;
        form.querySelector("button").disabled = false;
      }
    }

    findButton.addEventListener("click", () => guarded(find));

    form.addEventListener("change", () => {
      $("ble-hidden-field").hidden = !$("ble-ssid-other").checked;
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      // console.js disables a form's buttons once sent (the next page loads); this one stays
      const button = form.querySelector("button");
      setTimeout(() => { if (!busy) button.disabled = false; }, 0);
      clearError();
      const chosen = form.querySelector("input[name=ble-ssid]:checked");
      const other = !chosen || chosen.id === "ble-ssid-other";
      const ssid = other ? $("ble-hidden").value : chosen.value;
      const password = $("ble-pass").value;
      const known = networks.find((n) => n.ssid === ssid);
      let problem = "";
      if (!ssid) problem = "Type the name of your WiFi network.";
      else if (encoder.encode(ssid).length > 32) problem = "A WiFi network's name has at most 32 bytes.";
      else if (known && known.sec !== "OPEN" && !password) problem = "Type the password of " + ssid + ".";
      else if (password && (password.length < 8 || password.length > 63) && !(known && known.sec === "WEP")) {
        problem = "A WiFi password has 8 to 63 characters.";
      }
      if (problem) {
        $("ble-form-error").textContent = problem;
        return;
      }
      for (const name of ["send", "wifi", "cloud"]) step(name, "");
      guarded(() => configure(ssid, password));
    });

    if (navigator.bluetooth.getAvailability) navigator.bluetooth.getAvailability().then((available) => {
      if (!available) {
        say("Bluetooth is off or missing on this phone: turn it on, then press Find devices " +
          "nearby, or use the steps through the device's WiFi network below.");
      }
    }, () => {});
  });
})();
