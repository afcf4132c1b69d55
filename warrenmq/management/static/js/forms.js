// Form pieces shared by the pages: labelled rows, an arguments editor, the publish form.
import { api, path, exchangeSegment } from "./api.js";
import { h, act } from "./dom.js";

// form([[label, input], ...], buttons) -> a two-column grid form (submit runs onsubmit)
export function form(rows, buttons, onsubmit) {
  const el = h("form", { class: "form", onsubmit: (e) => { e.preventDefault(); onsubmit(e.submitter || el.querySelector("button.primary")); } },
    rows.filter((r) => r).map(([label, input]) => (label == null ? h("div", { class: "full" }, input) : [h("label", {}, label), input])),
    h("div", { class: "buttons" }, buttons));
  return el;
}

export function input(attrs = {}) {
  return h("input", { type: "text", ...attrs });
}

export function select(options, attrs = {}) {
  const el = h("select", { ...attrs, value: null }, options.map((o) => (Array.isArray(o) ? h("option", { value: o[0] }, o[1]) : h("option", { value: o }, o))));
  if (attrs.value != null) el.value = attrs.value;
  return el;
}

// Typed values for arguments and headers: "5" as a number when the type says so.
function typed(value, type) {
  if (type === "number") {
    const n = Number(value);
    if (value.trim() === "" || Number.isNaN(n)) throw new Error(`"${value}" is not a number`);
    return n;
  }
  if (type === "boolean") return value.trim().toLowerCase() === "true";
  if (type === "list") {
    try { const v = JSON.parse(value); if (Array.isArray(v)) return v; } catch (e) { /* below */ }
    throw new Error(`"${value}" is not a JSON list`);
  }
  return value;
}

const NUMERIC = new Set(["x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-max-priority",
  "x-delivery-limit", "priority", "max-length", "max-length-bytes", "message-ttl", "expires", "delivery-limit"]);
const BOOLEAN = new Set(["x-single-active-consumer"]);

// Rows of key = value (type); hints add a row with a known key.  .value() -> object
export function kvEditor(hints = [], placeholder = "key") {
  const rows = h("div", { class: "kvrows" });
  const addRow = (key = "", value = "", type = "string") => {
    const t = select([["string", "String"], ["number", "Number"], ["boolean", "Boolean"], ["list", "List (JSON)"]], { value: type, "aria-label": "type" });
    const row = h("div", { class: "kvrow" }, h("input", { placeholder, value: key, "aria-label": placeholder }),
      h("input", { placeholder: "value", value, "aria-label": "value" }), t,
      h("button", { type: "button", class: "small", title: "Remove", onclick: () => { row.remove(); if (!rows.children.length) addRow(); } }, "×"));
    rows.append(row);
    return row;
  };
  addRow();
  const el = h("div", {}, rows);
  if (hints.length) {
    el.append(h("div", { class: "hints" }, "Add ", hints.map((key) => h("a", {
      onclick: () => {
        const empty = [...rows.children].find((r) => !r.children[0].value && !r.children[1].value);
        const type = NUMERIC.has(key) ? "number" : BOOLEAN.has(key) ? "boolean" : "string";
        const row = empty || addRow();
        row.children[0].value = key;
        row.children[2].value = type;
        row.children[1].focus();
      },
    }, key))));
  }
  el.value = () => {
    const out = {};
    for (const row of rows.children) {
      const [k, v, t] = row.children;
      if (k.value.trim()) out[k.value.trim()] = typed(v.value, t.value);
    }
    return out;
  };
  el.reset = () => { rows.replaceChildren(); addRow(); };
  return el;
}

export const QUEUE_ARGUMENTS = ["x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow",
  "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-single-active-consumer", "x-max-priority", "x-delivery-limit"];

// Publish a message to an exchange (routing key given, or fixed for a queue's default-exchange form).
export function publishForm(vhost, exchange, fixedRoutingKey = null) {
  const routingKey = input({ name: "routing_key", value: fixedRoutingKey || "", placeholder: "routing key" });
  if (fixedRoutingKey != null) routingKey.readOnly = true;
  const mode = select([["1", "1 - Non-persistent"], ["2", "2 - Persistent"]], { name: "delivery_mode" });
  const headers = kvEditor([], "header");
  const props = kvEditor(["content_type", "correlation_id", "message_id", "reply_to", "expiration", "priority", "type", "app_id"], "property");
  const payload = h("textarea", { name: "payload", placeholder: "payload", "aria-label": "Payload" });
  const encoding = select([["string", "String"], ["base64", "Base64"]], { name: "payload_encoding" });
  const button = h("button", { class: "primary", type: "submit" }, "Publish message");
  return form([
    ["Routing key", routingKey], ["Delivery mode", mode], ["Headers", headers], ["Properties", props],
    ["Payload", payload], ["Payload encoding", encoding],
  ], [button], () => act(button, async () => {
    const properties = { delivery_mode: Number(mode.value), ...props.value() };
    const hs = headers.value();
    if (Object.keys(hs).length) properties.headers = hs;
    const reply = await api(path("exchanges", vhost, exchangeSegment(exchange), "publish"), {
      method: "POST",
      body: { routing_key: routingKey.value, properties, payload: payload.value, payload_encoding: encoding.value },
    });
    return reply.routed;
  }, (routed) => (routed ? "Message published." : "Message published, but not routed to any queue.")));
}

// Options of every vhost the user may see, for a <select>.
export async function vhostOptions(selected) {
  const vhosts = await api("/api/vhosts?columns=name");
  return vhosts.map((v) => h("option", { value: v.name, selected: v.name === selected }, v.name));
}
