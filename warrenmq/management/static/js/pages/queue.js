// One queue: its numbers and charts, consumers, bindings, and what an operator does to its
// messages: publish, get (peek), move to another queue, purge, delete.
import { api, path, query } from "../api.js";
import { h, clear, num, rate, bytes, features, act, confirmDialog, json, when } from "../dom.js";
import { renderChart, Recorder, COLORS } from "../chart.js";
import { simpleTable, kvTable } from "../table.js";
import { form, input, select, publishForm } from "../forms.js";
import { bindingColumns, bindForm } from "./exchanges.js";

const SPAN = 5 * 60 * 1000; // kept; the charts show the last minute, or more once the page has been open longer

export function mount(el, ctx) {
  const [vhost, name] = ctx.params;
  const base = path("queues", vhost, name);
  const tiles = h("div", { class: "tiles" });
  const info = h("div");
  const lengthsBox = h("div", { class: "chart-box", id: "queue-lengths" });
  const ratesBox = h("div", { class: "chart-box", id: "queue-rates" });
  const consumers = h("div");
  const bindings = h("div");
  const recorder = new Recorder(SPAN);
  const opened = Date.now();
  let gone = false;

  const purge = h("button", { onclick: async () => {
    if (!(await confirmDialog(`Purge queue ${name}? Its ready messages are deleted.`, "Purge"))) return;
    await act(purge, () => api(base + "/contents", { method: "DELETE" }), "Queue purged.");
    page.refresh();
  } }, "Purge messages");
  const del = h("button", { class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete queue ${name} in ${vhost}, with its messages?`, "Delete"))) return;
    const done = await act(del, () => api(base, { method: "DELETE" }).then(() => true), "Queue deleted.");
    if (done) ctx.go("#/queues");
  } }, "Delete queue");

  el.append(
    h("div", { class: "page-head" },
      h("div", {}, h("div", { class: "crumbs" }, h("a", { href: "#/queues" }, "Queues"), " in virtual host ", h("code", {}, vhost)), h("h1", { id: "queue-name" }, name)),
      h("div", { class: "actions" }, purge, del)),
    tiles,
    h("div", { class: "row" },
      h("div", { class: "card" }, h("h2", {}, "Queued messages ", h("span", { class: "muted" }, "(since this page opened)")), lengthsBox),
      h("div", { class: "card" }, h("h2", {}, "Message rates"), ratesBox)),
    h("div", { class: "row" },
      h("div", { class: "card" }, h("h2", {}, "Details"), info),
      h("div", { class: "card" }, h("h2", {}, "Consumers"), consumers)),
    h("div", { class: "row" },
      h("div", { class: "card", id: "publish" }, h("h2", {}, "Publish a message"),
        h("p", { class: "muted" }, "Through the default exchange, with the queue's name as routing key."), publishForm(vhost, "", name)),
      h("div", { class: "card", id: "get" }, h("h2", {}, "Get messages"), getMessages(vhost, name, base, () => page.refresh()))),
    h("div", { class: "row" },
      h("div", { class: "card", id: "move" }, h("h2", {}, "Move messages"), moveMessages(vhost, name, base, () => page.refresh())),
      h("div", { class: "card" }, h("h2", {}, "Bindings"), bindings, h("h3", { style: { marginTop: "1em" } }, "Add a binding to this queue"),
        bindForm(vhost, { queue: name }, () => page.refresh()))));

  const page = {
    async refresh() {
      if (gone) return;
      let q;
      try { q = await api(base); } catch (e) {
        if (e.status === 404) { gone = true; clear(tiles, h("p", { class: "error" }, "This queue no longer exists.")); return; }
        throw e;
      }
      const stats = q.message_stats || {};
      const r = (k) => stats[k + "_details"]?.rate ?? 0;
      clear(tiles,
        tile("Ready", num(q.messages_ready)), tile("Unacked", num(q.messages_unacknowledged)), tile("Total", num(q.messages)),
        tile("Consumers", num(q.consumers)), tile("Incoming", rate(r("publish"))), tile("Deliver / get", rate(r("deliver_get"))),
        tile("Ack", rate(r("ack"))), tile("Message bytes", bytes(q.message_bytes)));
      const now = Date.now();
      const shown = Math.min(SPAN, Math.max(60_000, now - opened));
      const lengths = [["messages_ready", "Ready"], ["messages_unacknowledged", "Unacked"]]
        .map(([k, label], i) => ({ key: k, label, color: COLORS[i], points: recorder.add(k, now, q[k]) }));
      const rates = [["publish", "Incoming"], ["deliver_get", "Deliver / get"], ["ack", "Ack"]]
        .map(([k, label], i) => ({ key: k, label, color: COLORS[i], points: recorder.add("rate-" + k, now, r(k)) }));
      renderChart(lengthsBox, { name: "queue-lengths", series: lengths, span: shown, now, format: num, integer: true });
      renderChart(ratesBox, { name: "queue-rates", series: rates, span: shown, now, format: (v) => num(v) + "/s" });
      clear(info, kvTable([
        ["Type", q.type], ["State", q.state], ["Features", features(q).length ? features(q) : "none"],
        ["Arguments", json(q.arguments)], ["Policy", q.policy || ""],
        ["Effective policy definition", json(q.effective_policy_definition)],
        q.owner_pid_details ? ["Exclusive owner", q.owner_pid_details.name] : null,
        q.single_active_consumer_tag ? ["Single active consumer", q.single_active_consumer_tag] : null,
        ["Messages paged out", num(q.messages_paged_out)], ["Memory", bytes(q.memory)],
        q.idle_since ? ["Idle since", when(Date.parse(q.idle_since))] : null,
      ]));
      clear(consumers, simpleTable(q.consumer_details || [], [
        { key: "consumer_tag", title: "Tag" },
        { key: "channel", title: "Channel", get: (c) => h("a", { href: "#/connections/" + encodeURIComponent(c.channel_details.connection_name) }, c.channel_details.name) },
        { key: "ack_required", title: "Ack required", get: (c) => (c.ack_required ? "yes" : "no") },
        { key: "exclusive", title: "Exclusive", get: (c) => (c.exclusive ? "yes" : "no") },
        { key: "prefetch_count", title: "Prefetch", num: true },
        { key: "activity_status", title: "Status" },
      ], "No consumers."));
      const bound = await api(base + "/bindings");
      clear(bindings, simpleTable(bound, bindingColumns(vhost, "destination", () => page.refresh()), "No bindings."));
    },
  };
  return page;
}

function tile(label, value) {
  return h("div", { class: "tile" }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

// Peek: GET .../peek where the node has it (it takes nothing), else RabbitMQ's get with requeue.
let noPeek = false;

async function peek(base, count) {
  if (!noPeek) {
    try {
      const found = await api(base + "/peek" + query({ count }));
      return Array.isArray(found) ? found : found.messages || found.items || [];
    } catch (e) {
      if (e.status !== 404 && e.status !== 405) throw e;
      noPeek = true; // this node has no /peek: do not ask again in this page's life
    }
  }
  return api(base + "/get", { method: "POST", body: { count, ackmode: "ack_requeue_true", encoding: "auto", truncate: 50000 } });
}

function getMessages(vhost, name, base, after) {
  const mode = select([["peek", "Peek: leave them in the queue"], ["ack_requeue_false", "Take: remove them from the queue"],
    ["reject_requeue_false", "Reject: dead-letter them (or drop)"]], { name: "ackmode" });
  const count = input({ name: "count", type: "number", min: 1, value: "1", style: { width: "6em" } });
  const out = h("div", { id: "got-messages" });
  const button = h("button", { class: "primary", type: "submit" }, "Get messages");
  const f = form([["Mode", mode], ["Messages", count]], [button], () => act(button, async () => {
    const n = Math.max(1, Number(count.value) || 1);
    const messages = mode.value === "peek" ? await peek(base, n)
      : await api(base + "/get", { method: "POST", body: { count: n, ackmode: mode.value, encoding: "auto", truncate: 50000 } });
    clear(out, messages.length ? messages.map(showMessage) : h("p", { class: "muted" }, "The queue has no ready messages."));
    after();
  }));
  return h("div", {}, f, out);
}

function showMessage(m, i) {
  const props = Object.entries(m.properties || {}).map(([k, v]) => [k, json(v)]);
  return h("div", { class: "message" },
    h("header", {}, h("b", {}, `Message ${i + 1}`), m.redelivered ? h("span", { class: "badge warn" }, "redelivered") : null,
      h("span", {}, "Exchange: ", h("code", {}, m.exchange || "(AMQP default)")), h("span", {}, "Routing key: ", h("code", {}, m.routing_key)),
      h("span", { class: "muted" }, `${num(m.payload_bytes)} bytes, ${m.payload_encoding}`)),
    props.length ? kvTable(props) : null,
    h("pre", { class: "payload" }, m.payload));
}

function moveMessages(vhost, name, base, after) {
  const list = h("datalist", { id: "move-targets" });
  const destination = input({ name: "destination", required: true, list: "move-targets", placeholder: "queue name", autocomplete: "off" });
  let timer = null;
  destination.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const page = await api(path("queues", vhost) + query({ page: 1, page_size: 20, name: destination.value, columns: "name" })).catch(() => null);
      if (page) list.replaceChildren(...page.items.filter((q) => q.name !== name).map((q) => h("option", { value: q.name })));
    }, 200);
  });
  const count = input({ name: "count", type: "number", min: 1, placeholder: "all", style: { width: "8em" } });
  const button = h("button", { class: "primary", type: "submit" }, "Move messages");
  return h("div", {},
    h("p", { class: "muted" }, `Ready messages go from the head of ${name} to the back of another queue in ${vhost}, each published there before it leaves this one.`),
    form([["Destination queue", h("div", {}, destination, list)], ["How many", count]], [button], () => act(button, async () => {
      const body = { action: "move", destination: destination.value };
      if (count.value) body.count = Number(count.value);
      const reply = await api(base + "/actions", { method: "POST", body });
      after();
      return reply.moved;
    }, (moved) => `Moved ${num(moved)} message${moved === 1 ? "" : "s"} to ${destination.value}.`)));
}
