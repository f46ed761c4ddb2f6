// The router's dashboard: every router's servers, services and clients
// with request rate, success rate and latency, each client's endpoints
// with their balancer load and failure-accrual state, recent requests and
// the log filter. Polls /admin/dashboard.json once a second; rates are
// the change between two polls.
"use strict";

(() => {
  const {el, replace, getJSON, fetchOk, number, percent, ms} = ui;
  const POLL_MS = 1000;
  const app = document.getElementById("app");
  let previous = null;
  // Routers whose dtab the reader opened, kept open across redraws.
  const openDtabs = new Set();

  ui.header("dashboard");
  const status = el("p", {class: "muted", id: "status"}, "loading…");
  const routersBox = el("div", {id: "routers"});
  const recentBox = el("div", {id: "recent"});
  const loggingBox = el("section", {class: "card", id: "logging"});
  replace(app, status, routersBox, recentBox, loggingBox);

  // Requests per second, success rate and the figures' own latency for
  // one scope, from this poll and the last.
  function rates(now, before, seconds) {
    const requests = now.requests ?? 0;
    const success = now.success ?? 0;
    const failures = now.failures ?? 0;
    if (!before || seconds <= 0) {
      const done = success + failures;
      return {rate: null, success: done > 0 ? success / done : null};
    }
    const dRequests = requests - (before.requests ?? 0);
    const dSuccess = success - (before.success ?? 0);
    const dFailures = failures - (before.failures ?? 0);
    const done = dSuccess + dFailures;
    return {rate: Math.max(0, dRequests) / seconds, success: done > 0 ? dSuccess / done : null};
  }

  function latency(figures) {
    const stat = figures.request_latency_ms;
    return stat && typeof stat === "object" ? stat : {};
  }

  function scopeTable(router, kind, scopes, before, seconds, extra) {
    const names = Object.keys(scopes).sort();
    if (names.length === 0) return el("p", {class: "muted"}, `no ${kind}s yet`);
    const head = el("tr", {},
      el("th", {}, kind), el("th", {class: "num"}, "requests"), el("th", {class: "num"}, "req/s"),
      el("th", {class: "num"}, "success"), el("th", {class: "num"}, "p50"),
      el("th", {class: "num"}, "p99"), extra ? el("th", {}, extra.title) : null);
    const rows = names.map((name) => {
      const figures = scopes[name];
      const was = before && before[name];
      const r = rates(figures, was, seconds);
      const lat = latency(figures);
      const cell = (col, text, cls) => el("td", {class: cls, "data-col": col}, text);
      return el("tr", {"data-router": router, "data-kind": kind, "data-name": name},
        el("td", {class: "mono"}, name),
        cell("requests", number(figures.requests ?? 0), "num"),
        cell("rate", r.rate === null ? "–" : number(r.rate), "num"),
        cell("success", percent(r.success), "num " + (r.success !== null && r.success < 0.95 ? "bad" : "")),
        cell("p50", ms(lat.p50), "num"),
        cell("p99", ms(lat.p99), "num"),
        extra ? el("td", {}, extra.cell(figures)) : null);
    });
    return el("table", {}, el("thead", {}, head), el("tbody", {}, rows));
  }

  function endpoints(figures) {
    const state = figures.state;
    if (!state) return el("span", {class: "muted"}, "–");
    const list = state.endpoints || [];
    const summary = el("div", {class: "muted"},
      `${state.state}; ${list.length} endpoint${list.length === 1 ? "" : "s"}, ` +
      `${state.available ?? 0} available`);
    if (list.length === 0) return summary;
    const rows = list.map((e) => el("tr", {"data-endpoint": e.address},
      el("td", {class: "mono"}, e.address),
      el("td", {}, el("span", {class: `badge ${e.state}`}, e.state),
        e.deadForMs ? ` ${number(e.deadForMs / 1000)} s` : ""),
      el("td", {class: "num"}, `load ${number(e.load)}`),
      el("td", {class: "num"}, `${e.inFlight} in flight`),
      el("td", {class: "num"}, `weight ${number(e.weight)}`)));
    return [summary, el("table", {class: "endpoints"}, el("tbody", {}, rows))];
  }

  function routerCard(router, before, seconds) {
    const clientExtra = {title: "endpoints", cell: endpoints};
    const playground = `/delegator?namespace=${encodeURIComponent(router.label)}`;
    return el("section", {class: "card", "data-router": router.label},
      el("h2", {}, router.label, " ", el("span", {class: "badge"}, router.protocol)),
      el("details", {
        open: openDtabs.has(router.label),
        ontoggle: (e) => e.target.open ? openDtabs.add(router.label) : openDtabs.delete(router.label),
      }, el("summary", {}, "dtab"),
        el("pre", {}, router.dtab.split(";").join(";\n") || "(empty)"),
        el("a", {href: playground}, "resolve a name in the playground")),
      el("h3", {}, "servers"),
      scopeTable(router.label, "server", router.server, before && before.server, seconds),
      el("h3", {}, "services"),
      scopeTable(router.label, "service", router.service, before && before.service, seconds),
      el("h3", {}, "clients"),
      scopeTable(router.label, "client", router.client, before && before.client, seconds,
        clientExtra));
  }

  async function recent() {
    let rows;
    try {
      rows = await getJSON("/requests.json");
    } catch (e) {
      replace(recentBox, el("p", {class: "bad"}, `recent requests: ${e.message}`));
      return;
    }
    const shown = rows.slice(0, 20).map((r) => el("tr", {},
      el("td", {}, new Date(r.timestamp).toLocaleTimeString()),
      el("td", {}, r.router), el("td", {class: "mono"}, r.request),
      el("td", {class: "mono"}, r.logicalName ?? "–"),
      el("td", {class: "mono"}, r.concreteName ?? "–"),
      el("td", {class: "mono"}, r.destination ?? "–"),
      el("td", {class: "num"}, r.status ?? r.error ?? "–"),
      el("td", {class: "num"}, `${number(r.durationMs)} ms`)));
    replace(recentBox, el("section", {class: "card"}, el("h2", {}, "recent requests"),
      el("table", {},
        el("thead", {}, el("tr", {}, ["time", "router", "request", "name", "bound", "endpoint",
          "status", "time taken"].map((h) => el("th", {}, h)))),
        el("tbody", {}, shown))));
  }

  async function poll() {
    let doc;
    try {
      doc = await getJSON("/admin/dashboard.json");
    } catch (e) {
      status.className = "bad";
      replace(status, `cannot read the figures: ${e.message}`);
      return;
    }
    const now = performance.now();
    const seconds = previous ? (now - previous.at) / 1000 : 0;
    const before = (label) => previous && previous.doc.routers.find((r) => r.label === label);
    replace(routersBox, doc.routers.map((r) => routerCard(r, before(r.label), seconds)));
    status.className = "muted";
    replace(status, `updated ${new Date().toLocaleTimeString()}; latency is the last full ` +
      "interval's; rates are since the previous update");
    previous = {doc, at: now};
    if (doc.recentRequests) await recent();
  }

  // The log filter, read and set through /admin/logging.
  async function logging() {
    const input = el("input", {type: "text", id: "log-filter", class: "grow mono"});
    const said = el("span", {class: "muted"});
    const apply = el("button", {onclick: async () => {
      try {
        await fetchOk("/admin/logging", {method: "PUT", body: input.value});
        said.className = "ok";
        replace(said, "applied");
      } catch (e) {
        said.className = "bad";
        replace(said, e.message);
      }
    }}, "apply");
    replace(loggingBox, el("h2", {}, "log filter"),
      el("div", {class: "row"}, input, apply, said),
      el("p", {class: "muted"}, "e.g. info or info,router=debug; applied at once, not saved"));
    try {
      input.value = (await (await fetchOk("/admin/logging")).text()).trim();
    } catch (e) {
      replace(said, e.message);
    }
  }

  // One poll at a time: a slow answer delays the next instead of piling up.
  let polling = false;
  async function tick() {
    if (polling) return;
    polling = true;
    try {
      await poll();
    } finally {
      polling = false;
    }
  }
  tick();
  setInterval(tick, POLL_MS);
  logging();
})();
