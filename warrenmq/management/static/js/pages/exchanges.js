// Exchanges: the paged list with a declare form; one exchange with its bindings, a binding
// form, a publish form and Delete.
import { api, path, exchangeSegment } from "../api.js";
import { h, clear, rate, features, act, confirmDialog, json } from "../dom.js";
import { PagedList, simpleTable, kvTable } from "../table.js";
import { form, input, select, kvEditor, publishForm, vhostOptions } from "../forms.js";

export function mount(el, ctx) {
  return ctx.params[0] == null ? list(el, ctx) : detail(el, ctx, ctx.params[0], ctx.params[1]);
}

export function exchangeLink(vhost, name) {
  return h("a", { href: `#/exchanges/${encodeURIComponent(vhost)}/${encodeURIComponent(exchangeSegment(name))}` }, name || "(AMQP default)");
}

function list(el, ctx) {
  const vhost = ctx.vhost;
  const table = new PagedList({
    noun: "exchanges",
    endpoint: () => (vhost ? path("exchanges", vhost) : "/api/exchanges"),
    state: ctx.query,
    onState: ctx.setQuery,
    columns: [
      { key: "vhost", title: "Vhost" },
      { key: "name", title: "Name", get: (x) => exchangeLink(x.vhost, x.name) },
      { key: "type", title: "Type" },
      { key: "features", title: "Features", sort: false, fields: ["durable", "auto_delete", "internal", "arguments"], get: features },
      { key: "policy", title: "Policy" },
      { key: "message_stats.publish_in_details.rate", title: "Rate in", num: true, get: (x) => rate(x.message_stats?.publish_in_details?.rate ?? 0) },
      { key: "message_stats.publish_out_details.rate", title: "Rate out", num: true, get: (x) => rate(x.message_stats?.publish_out_details?.rate ?? 0) },
    ],
  });
  el.append(h("div", { class: "page-head" }, h("h1", {}, "Exchanges"), vhost ? h("span", { class: "muted" }, "in " + vhost) : null),
    h("div", { class: "card" }, table.element), addExchange(ctx, () => table.refresh()));
  return { refresh: () => table.refresh() };
}

function addExchange(ctx, after) {
  const vhost = h("select", { name: "vhost", "aria-label": "Virtual host" });
  vhostOptions(ctx.vhost || "/").then((options) => vhost.append(...options));
  const name = input({ name: "name", required: true });
  const type = select(["direct", "fanout", "topic", "headers"], { name: "type" });
  const durable = select([["true", "Durable"], ["false", "Transient"]], { name: "durable" });
  const autoDelete = select([["false", "No"], ["true", "Yes"]], { name: "auto_delete" });
  const internal = select([["false", "No"], ["true", "Yes"]], { name: "internal" });
  const args = kvEditor(["alternate-exchange"], "argument");
  const button = h("button", { class: "primary", type: "submit" }, "Add exchange");
  const f = form([["Virtual host", vhost], ["Name", name], ["Type", type], ["Durability", durable], ["Auto delete", autoDelete],
    ["Internal", internal], ["Arguments", args]], [button], () => act(button, async () => {
    await api(path("exchanges", vhost.value, name.value), { method: "PUT", body: {
      type: type.value, durable: durable.value === "true", auto_delete: autoDelete.value === "true", internal: internal.value === "true", arguments: args.value(),
    } });
    name.value = ""; args.reset(); after();
  }, "Exchange declared."));
  return h("details", { class: "card" }, h("summary", {}, "Add a new exchange"), f);
}

export function bindingColumns(vhost, side, after) {
  const target = (b) => (b.destination_type === "queue"
    ? h("a", { href: `#/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(b.destination)}` }, b.destination)
    : exchangeLink(vhost, b.destination));
  const columns = [
    side === "source" ? { key: "destination", title: "To", get: (b) => [h("span", { class: "badge" }, b.destination_type === "queue" ? "queue" : "exchange"), " ", target(b)] }
      : { key: "source", title: "From", get: (b) => exchangeLink(vhost, b.source) },
    { key: "routing_key", title: "Routing key", get: (b) => h("code", {}, b.routing_key) },
    { key: "arguments", title: "Arguments", get: (b) => json(b.arguments) === "{}" ? "" : json(b.arguments) },
    { key: "unbind", title: "", get: (b) => b.source === "" ? h("span", { class: "muted" }, "default binding") : h("button", { class: "small danger", onclick: (e) => unbind(e.target, b, after) }, "Unbind") },
  ];
  return columns;
}

async function unbind(button, b, after) {
  const kind = b.destination_type === "queue" ? "q" : "e";
  await act(button, () => api(path("bindings", b.vhost, "e", exchangeSegment(b.source), kind, b.destination, b.properties_key), { method: "DELETE" }), "Binding removed.");
  after();
}

// A form binding `fixed` (an exchange as source, or a queue as destination) to another object.
export function bindForm(vhost, fixed, after) {
  const kind = select([["q", "To queue"], ["e", "To exchange"]], { name: "destination_type" });
  const other = input({ name: fixed.queue ? "source" : "destination", required: true, placeholder: fixed.queue ? "exchange name" : "queue or exchange name" });
  const key = input({ name: "routing_key", placeholder: "routing key" });
  const args = kvEditor(fixed.queue ? [] : ["x-match"], "argument");
  const button = h("button", { class: "primary", type: "submit" }, "Bind");
  const rows = fixed.queue ? [["From exchange", other]] : [["Destination", h("div", { class: "kvrow", style: { display: "flex", gap: ".4em" } }, kind, other)]];
  return form([...rows, ["Routing key", key], ["Arguments", args]], [button], () => act(button, async () => {
    const source = fixed.queue ? other.value : fixed.exchange;
    const destination = fixed.queue ? fixed.queue : other.value;
    const dtype = fixed.queue ? "q" : kind.value;
    await api(path("bindings", vhost, "e", exchangeSegment(source), dtype, destination), { method: "POST", body: { routing_key: key.value, arguments: args.value() } });
    other.value = ""; key.value = ""; args.reset(); after();
  }, "Binding added."));
}

function detail(el, ctx, vhost, segment) {
  const name = segment === "amq.default" ? "" : segment;
  const info = h("div");
  const source = h("div");
  const destination = h("div");
  const del = h("button", { class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete exchange ${name} in ${vhost}?`, "Delete"))) return;
    const done = await act(del, () => api(path("exchanges", vhost, segment), { method: "DELETE" }).then(() => true), "Exchange deleted.");
    if (done) ctx.go("#/exchanges");
  } }, "Delete");
  const refresh = async () => {
    let x;
    try { x = await api(path("exchanges", vhost, segment)); } catch (e) {
      if (e.status === 404) { clear(info, h("p", { class: "error" }, "No such exchange.")); return; }
      throw e;
    }
    clear(info, kvTable([["Virtual host", x.vhost], ["Type", x.type], ["Features", features(x).length ? features(x) : "none"],
      ["Policy", x.policy || ""], ["Arguments", json(x.arguments)],
      ["Rate in", rate(x.message_stats?.publish_in_details?.rate ?? 0)], ["Rate out", rate(x.message_stats?.publish_out_details?.rate ?? 0)]]));
    const [from, to] = await Promise.all([api(path("exchanges", vhost, segment, "bindings", "source")), api(path("exchanges", vhost, segment, "bindings", "destination"))]);
    clear(source, simpleTable(from, bindingColumns(vhost, "source", refresh), "No bindings from this exchange."));
    clear(destination, simpleTable(to, bindingColumns(vhost, "destination", refresh), "No exchange is bound to this one."));
  };
  el.append(
    h("div", { class: "page-head" }, h("div", {}, h("div", { class: "crumbs" }, h("a", { href: "#/exchanges" }, "Exchanges"), " in virtual host ", h("code", {}, vhost)),
      h("h1", {}, name || "(AMQP default)")), name.startsWith("amq.") || !name ? null : h("div", { class: "actions" }, del)),
    h("div", { class: "row" },
      h("div", { class: "card" }, h("h2", {}, "Details"), info),
      h("div", { class: "card" }, h("h2", {}, "Bindings from this exchange"), source, h("h3", { style: { marginTop: "1em" } }, "Add a binding"),
        name ? bindForm(vhost, { exchange: name }, () => refresh()) : h("p", { class: "muted" }, "The default exchange binds every queue by its name."))),
    h("div", { class: "row" },
      h("div", { class: "card" }, h("h2", {}, "Bindings to this exchange"), destination),
      h("div", { class: "card" }, h("h2", {}, "Publish a message"), publishForm(vhost, name))));
  return { refresh };
}
