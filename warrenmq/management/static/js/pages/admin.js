// Admin: users, virtual hosts, permissions, policies, and definitions export and import.
import { api, path } from "../api.js";
import { h, clear, num, act, confirmDialog, json, rate } from "../dom.js";
import { PagedList, simpleTable, kvTable } from "../table.js";
import { form, input, select, kvEditor, vhostOptions } from "../forms.js";

const SECTIONS = [["users", "Users", true], ["vhosts", "Virtual hosts", true], ["permissions", "Permissions", true],
  ["policies", "Policies", false], ["definitions", "Definitions", true]];

export function mount(el, ctx) {
  const isAdmin = ctx.user.tags.includes("administrator");
  const allowed = SECTIONS.filter(([, , adminOnly]) => isAdmin || !adminOnly);
  const section = allowed.some(([s]) => s === ctx.params[0]) ? ctx.params[0] : allowed[0][0];
  el.append(h("div", { class: "page-head" }, h("h1", {}, "Admin")),
    h("nav", { class: "tabs" }, allowed.map(([s, label]) => h("a", { href: "#/admin/" + s, class: s === section ? "on" : "" }, label))));
  const body = h("div");
  el.append(body);
  const name = ctx.params[1];
  const pages = { users: name ? userDetail : users, vhosts: name ? vhostDetail : vhosts, permissions, policies, definitions };
  return pages[section](body, ctx, name);
}

const TAGS = ["administrator", "monitoring", "policymaker", "management", "impersonator"];

function users(el, ctx) {
  const table = new PagedList({
    noun: "users", endpoint: () => "/api/users", state: ctx.query, onState: ctx.setQuery,
    columns: [
      { key: "name", title: "Name", get: (u) => h("a", { href: "#/admin/users/" + encodeURIComponent(u.name) }, u.name) },
      { key: "tags", title: "Tags", get: (u) => (u.tags || []).map((t) => h("span", { class: "badge" + (t === "administrator" ? " accent" : "") }, t)) },
      { key: "password_hash", title: "Password", sort: false, get: (u) => (u.password_hash ? "●●●●●●" : h("span", { class: "muted" }, "none")) },
    ],
  });
  el.append(h("div", { class: "card" }, table.element), h("div", { class: "card" }, h("h2", {}, "Add or update a user"), userForm(() => table.refresh())));
  return { refresh: () => table.refresh() };
}

function userForm(after, fixedName = null) {
  const name = input({ name: "username", required: true, value: fixedName || "", readOnly: !!fixedName });
  const password = input({ name: "password", type: "password", autocomplete: "new-password" });
  const tags = input({ name: "tags", placeholder: "comma-separated" });
  const hints = h("div", { class: "hints" }, "Set ", TAGS.map((t) => h("a", { onclick: () => {
    const list = tags.value.split(",").map((x) => x.trim()).filter(Boolean);
    if (!list.includes(t)) list.push(t);
    tags.value = list.join(", ");
  } }, t)));
  const button = h("button", { class: "primary", type: "submit" }, fixedName ? "Update user" : "Add user");
  return form([["Username", name], ["Password", h("div", {}, password, h("div", { class: "hints" }, fixedName ? "Leave empty to keep the password." : "Empty: no password login."))],
    ["Tags", h("div", {}, tags, hints)]], [button], () => act(button, async () => {
    const body = { tags: tags.value };
    if (password.value) body.password = password.value;
    else if (!fixedName) body.password_hash = "";
    await api(path("users", name.value), { method: "PUT", body });
    password.value = "";
    if (!fixedName) { name.value = ""; tags.value = ""; }
    after();
  }, "User saved."));
}

function userDetail(el, ctx, name) {
  const info = h("div");
  const perms = h("div");
  const del = h("button", { class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete user ${name}?`, "Delete"))) return;
    const done = await act(del, () => api(path("users", name), { method: "DELETE" }).then(() => true), "User deleted.");
    if (done) ctx.go("#/admin/users");
  } }, "Delete user");
  const refresh = async () => {
    const u = await api(path("users", name));
    clear(info, kvTable([["Tags", (u.tags || []).join(", ") || "none"], ["Password", u.password_hash ? "set" : "none"], ["Hashing", u.hashing_algorithm]]));
    const p = await api(path("users", name, "permissions"));
    clear(perms, simpleTable(p, permissionColumns(refresh), "No permissions."));
  };
  el.append(h("div", { class: "page-head" }, h("h2", {}, "User ", h("code", {}, name)), h("div", { class: "actions" }, del)),
    h("div", { class: "row" }, h("div", { class: "card" }, h("h2", {}, "Details"), info, h("h3", { style: { marginTop: "1em" } }, "Update"), userForm(refresh, name)),
      h("div", { class: "card" }, h("h2", {}, "Permissions"), perms, h("h3", { style: { marginTop: "1em" } }, "Set permission"), permissionForm(ctx, refresh, { user: name }))));
  return { refresh };
}

function vhosts(el, ctx) {
  const table = new PagedList({
    noun: "virtual hosts", endpoint: () => "/api/vhosts", state: ctx.query, onState: ctx.setQuery,
    columns: [
      { key: "name", title: "Name", get: (v) => h("a", { href: "#/admin/vhosts/" + encodeURIComponent(v.name) }, v.name) },
      { key: "description", title: "Description" },
      { key: "tags", title: "Tags", get: (v) => (v.tags || []).map((t) => h("span", { class: "badge" }, t)) },
      { key: "messages_ready", title: "Ready", num: true },
      { key: "messages_unacknowledged", title: "Unacked", num: true },
      { key: "messages", title: "Total", num: true },
      { key: "message_stats.publish_details.rate", title: "Publish", num: true, get: (v) => rate(v.message_stats?.publish_details?.rate ?? 0) },
      { key: "message_stats.deliver_get_details.rate", title: "Deliver / get", num: true, get: (v) => rate(v.message_stats?.deliver_get_details?.rate ?? 0) },
    ],
  });
  const name = input({ name: "vhost-name", required: true });
  const description = input({ name: "description" });
  const tags = input({ name: "vhost-tags", placeholder: "comma-separated" });
  const button = h("button", { class: "primary", type: "submit" }, "Add virtual host");
  const f = form([["Name", name], ["Description", description], ["Tags", tags]], [button], () => act(button, async () => {
    await api(path("vhosts", name.value), { method: "PUT", body: { description: description.value, tags: tags.value } });
    name.value = ""; description.value = ""; tags.value = "";
    table.refresh();
  }, "Virtual host added."));
  el.append(h("div", { class: "card" }, table.element), h("div", { class: "card" }, h("h2", {}, "Add a virtual host"), f));
  return { refresh: () => table.refresh() };
}

function vhostDetail(el, ctx, name) {
  const info = h("div");
  const perms = h("div");
  const del = h("button", { class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete virtual host ${name}, with all its exchanges, queues and messages?`, "Delete"))) return;
    const done = await act(del, () => api(path("vhosts", name), { method: "DELETE" }).then(() => true), "Virtual host deleted.");
    if (done) ctx.go("#/admin/vhosts");
  } }, "Delete virtual host");
  const refresh = async () => {
    const v = await api(path("vhosts", name));
    clear(info, kvTable([["Description", v.description], ["Tags", (v.tags || []).join(", ")], ["Messages", `${num(v.messages)} (${num(v.messages_ready)} ready, ${num(v.messages_unacknowledged)} unacked)`]]));
    const p = await api(path("vhosts", name, "permissions"));
    clear(perms, simpleTable(p, permissionColumns(refresh), "No permissions."));
  };
  el.append(h("div", { class: "page-head" }, h("h2", {}, "Virtual host ", h("code", {}, name)), h("div", { class: "actions" }, del)),
    h("div", { class: "row" }, h("div", { class: "card" }, h("h2", {}, "Details"), info),
      h("div", { class: "card" }, h("h2", {}, "Permissions"), perms, h("h3", { style: { marginTop: "1em" } }, "Set permission"), permissionForm(ctx, refresh, { vhost: name }))));
  return { refresh };
}

function permissionColumns(after) {
  return [
    { key: "user", title: "User", get: (p) => h("a", { href: "#/admin/users/" + encodeURIComponent(p.user) }, p.user) },
    { key: "vhost", title: "Virtual host", get: (p) => h("a", { href: "#/admin/vhosts/" + encodeURIComponent(p.vhost) }, p.vhost) },
    { key: "configure", title: "Configure", get: (p) => h("code", {}, p.configure) },
    { key: "write", title: "Write", get: (p) => h("code", {}, p.write) },
    { key: "read", title: "Read", get: (p) => h("code", {}, p.read) },
    { key: "clear", title: "", sort: false, fields: [], get: (p) => h("button", { class: "small danger", onclick: async (e) => {
      await act(e.target, () => api(path("permissions", p.vhost, p.user), { method: "DELETE" }), "Permission cleared.");
      after();
    } }, "Clear") },
  ];
}

function permissionForm(ctx, after, fixed = {}) {
  const user = fixed.user ? input({ value: fixed.user, readOnly: true }) : h("select", { name: "perm-user", "aria-label": "User" });
  if (!fixed.user) api("/api/users?columns=name").then((us) => user.append(...us.map((u) => h("option", { value: u.name }, u.name))));
  const vhost = fixed.vhost ? input({ value: fixed.vhost, readOnly: true }) : h("select", { name: "perm-vhost", "aria-label": "Virtual host" });
  if (!fixed.vhost) vhostOptions(ctx.vhost || "/").then((o) => vhost.append(...o));
  const configure = input({ name: "configure", value: ".*" });
  const write = input({ name: "write", value: ".*" });
  const read = input({ name: "read", value: ".*" });
  const button = h("button", { class: "primary", type: "submit" }, "Set permission");
  return form([["User", user], ["Virtual host", vhost], ["Configure regexp", configure], ["Write regexp", write], ["Read regexp", read]], [button],
    () => act(button, async () => {
      await api(path("permissions", vhost.value, user.value), { method: "PUT", body: { configure: configure.value, write: write.value, read: read.value } });
      after();
    }, "Permission set."));
}

function permissions(el, ctx) {
  const table = new PagedList({
    noun: "permissions", endpoint: () => (ctx.vhost ? path("vhosts", ctx.vhost, "permissions") : "/api/permissions"),
    state: ctx.query, onState: ctx.setQuery, columns: permissionColumns(() => table.refresh()), filter: false, // no names to filter
  });
  el.append(h("div", { class: "card" }, table.element), h("div", { class: "card" }, h("h2", {}, "Set permission"), permissionForm(ctx, () => table.refresh())));
  return { refresh: () => table.refresh() };
}

function policies(el, ctx) {
  const table = new PagedList({
    noun: "policies", endpoint: () => (ctx.vhost ? path("policies", ctx.vhost) : "/api/policies"), state: ctx.query, onState: ctx.setQuery,
    columns: [
      { key: "vhost", title: "Virtual host" },
      { key: "name", title: "Name" },
      { key: "pattern", title: "Pattern", get: (p) => h("code", {}, p.pattern) },
      { key: "apply-to", title: "Apply to" },
      { key: "definition", title: "Definition", sort: false, get: (p) => Object.entries(p.definition).map(([k, v]) => h("span", { class: "badge accent" }, `${k}: ${json(v)}`)) },
      { key: "priority", title: "Priority", num: true },
      { key: "delete", title: "", sort: false, fields: [], get: (p) => h("button", { class: "small danger", onclick: async (e) => {
        if (!(await confirmDialog(`Delete policy ${p.name} in ${p.vhost}?`, "Delete"))) return;
        await act(e.target, () => api(path("policies", p.vhost, p.name), { method: "DELETE" }), "Policy deleted.");
        table.refresh();
      } }, "Delete") },
    ],
  });
  const vhost = h("select", { name: "policy-vhost", "aria-label": "Virtual host" });
  vhostOptions(ctx.vhost || "/").then((o) => vhost.append(...o));
  const name = input({ name: "policy-name", required: true });
  const pattern = input({ name: "pattern", required: true, placeholder: "^amq\\." });
  const applyTo = select([["all", "Exchanges and queues"], ["queues", "Queues"], ["exchanges", "Exchanges"]], { name: "apply-to" });
  const priority = input({ name: "priority", type: "number", value: "0", style: { width: "6em" } });
  const definition = kvEditor(["max-length", "max-length-bytes", "message-ttl", "expires", "overflow", "dead-letter-exchange",
    "dead-letter-routing-key", "delivery-limit", "alternate-exchange", "queue-mode"], "key");
  const button = h("button", { class: "primary", type: "submit" }, "Add / update policy");
  const f = form([["Virtual host", vhost], ["Name", name], ["Pattern", pattern], ["Apply to", applyTo], ["Priority", priority], ["Definition", definition]], [button],
    () => act(button, async () => {
      await api(path("policies", vhost.value, name.value), { method: "PUT", body: {
        pattern: pattern.value, "apply-to": applyTo.value, priority: Number(priority.value) || 0, definition: definition.value(),
      } });
      name.value = ""; pattern.value = ""; definition.reset();
      table.refresh();
    }, "Policy saved."));
  el.append(h("div", { class: "card" }, table.element), h("div", { class: "card" }, h("h2", {}, "Add or update a policy"), f));
  return { refresh: () => table.refresh() };
}

function definitions(el, ctx) {
  const exportVhost = h("select", { name: "export-vhost", "aria-label": "Virtual host" }, h("option", { value: "" }, "All virtual hosts"));
  vhostOptions(null).then((o) => exportVhost.append(...o));
  const download = h("button", { class: "primary", type: "submit" }, "Download definitions");
  const exportForm = form([["Virtual host", exportVhost]], [download], () => act(download, async () => {
    const doc = await api(exportVhost.value ? path("definitions", exportVhost.value) : "/api/definitions");
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, "-");
    const a = h("a", { href: URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" })), download: `warrenmq-definitions-${stamp}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    return doc;
  }, (doc) => `Exported ${num((doc.queues || []).length)} queues, ${num((doc.exchanges || []).length)} exchanges, ${num((doc.bindings || []).length)} bindings.`));

  const file = h("input", { type: "file", name: "file", accept: ".json,application/json", required: true, "aria-label": "Definitions file" });
  const importVhost = h("select", { name: "import-vhost", "aria-label": "Import into" }, h("option", { value: "" }, "As in the file"));
  vhostOptions(null).then((o) => importVhost.append(...o));
  const upload = h("button", { class: "primary", type: "submit" }, "Upload definitions");
  const result = h("p", { id: "import-result", class: "muted" });
  const importForm = form([["Definitions file", file], ["Into virtual host", importVhost]], [upload], () => act(upload, async () => {
    if (!file.files.length) throw new Error("Choose a definitions file first.");
    const data = new FormData();
    data.append("file", file.files[0]);
    await api(importVhost.value ? path("definitions", importVhost.value) : "/api/definitions", { method: "POST", body: data });
    let doc = {};
    try { doc = JSON.parse(await file.files[0].text()); } catch (e) { /* the server took it: only the summary is lost */ }
    const counts = ["users", "vhosts", "permissions", "policies", "exchanges", "queues", "bindings"]
      .filter((k) => Array.isArray(doc[k]) && doc[k].length).map((k) => `${num(doc[k].length)} ${k}`);
    result.className = "";
    clear(result, h("span", { class: "badge ok" }, "imported"), ` ${file.files[0].name} at ${new Date().toLocaleTimeString("en-GB")}`,
      counts.length ? `: ${counts.join(", ")}.` : ".");
    file.value = "";
  }, "Definitions imported."));
  el.append(h("div", { class: "row" },
    h("div", { class: "card" }, h("h2", {}, "Export definitions"), h("p", { class: "muted" }, "Users, virtual hosts, permissions, policies, exchanges, queues and bindings, in RabbitMQ's format."), exportForm),
    h("div", { class: "card" }, h("h2", {}, "Import definitions"), h("p", { class: "muted" }, "A RabbitMQ or WarrenMQ definitions file; existing objects are kept or updated."), importForm, result)));
  return { refresh: async () => {} };
}
