// DOM building, number formatting, toasts and a confirm dialog: the UI's small toolkit.

// h("a", {href, class, onclick, dataset: {...}}, child, [children], "text") -> element
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// -- formatting --------------------------------------------------------------------------

export function num(value) {
  if (value == null || value === "") return "";
  if (typeof value !== "number") return String(value);
  return value.toLocaleString("en-US", { maximumFractionDigits: 1 });
}

export function rate(value) {
  if (value == null) return "";
  return (Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 10) / 10).toLocaleString("en-US") + "/s";
}

export function bytes(value) {
  if (value == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return (i ? value.toFixed(value < 10 ? 1 : 0) : value) + " " + units[i];
}

export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const mm = Math.floor(s / 60); s -= mm * 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s}s`;
  return `${s}s`;
}

export function when(epochMs) {
  if (!epochMs) return "";
  const d = new Date(epochMs);
  return d.toLocaleString("en-GB", { hour12: false });
}

export function pick(item, dotted) {
  return dotted.split(".").reduce((v, k) => (v == null ? undefined : v[k]), item);
}

export function json(value) {
  return value == null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
}

// A queue's or exchange's flags as small badges: D(urable), AD, Excl, I(nternal), args, policy.
export function features(item) {
  const out = [];
  if (item.durable) out.push(h("span", { class: "badge", title: "durable" }, "D"));
  if (item.auto_delete) out.push(h("span", { class: "badge", title: "auto-delete" }, "AD"));
  if (item.exclusive) out.push(h("span", { class: "badge", title: "exclusive" }, "Excl"));
  if (item.internal) out.push(h("span", { class: "badge", title: "internal" }, "I"));
  for (const key of Object.keys(item.arguments || {})) {
    out.push(h("span", { class: "badge accent", title: `${key}: ${json(item.arguments[key])}` }, short(key)));
  }
  return out;
}

const SHORT = {
  "x-message-ttl": "TTL", "x-expires": "Exp", "x-max-length": "Lim", "x-max-length-bytes": "Lim B",
  "x-dead-letter-exchange": "DLX", "x-dead-letter-routing-key": "DLK", "x-max-priority": "Pri",
  "x-single-active-consumer": "SAC", "x-queue-type": "type", "x-overflow": "Ovfl", "x-queue-mode": "mode",
  "alternate-exchange": "AE", "x-delivery-limit": "DL",
};

function short(key) {
  return SHORT[key] || key.replace(/^x-/, "");
}

// -- feedback ----------------------------------------------------------------------------

export function toast(text, kind = "") {
  const el = h("div", { class: "toast " + kind, role: "status" }, text);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "bad" ? 8000 : 4000);
}

// A modal yes/no question; resolves true when confirmed.
export function confirmDialog(text, yes = "OK") {
  return new Promise((resolve) => {
    const done = (answer) => { back.remove(); resolve(answer); };
    const ok = h("button", { class: "primary", onclick: () => done(true) }, yes);
    const back = h("div", { class: "modal-back", onclick: (e) => { if (e.target === back) done(false); } },
      h("div", { class: "modal", role: "dialog" },
        h("p", {}, text),
        h("div", { class: "buttons" }, h("button", { onclick: () => done(false) }, "Cancel"), ok)));
    document.body.append(back);
    ok.focus();
  });
}

// Run an action from a button: disable it meanwhile, toast the error if it fails.
export async function act(button, action, success) {
  if (button) button.disabled = true;
  try {
    const result = await action();
    if (success) toast(typeof success === "function" ? success(result) : success, "ok");
    return result;
  } catch (e) {
    toast(e.message, "bad");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
