// The dtab playground: a path and a dtab of one's own, resolved against a
// router's dtab (on a router) or a namespace's (on namerd). The tree is
// drawn node by node: the dentry that led to each node, every dentry
// tried at each path and why it matched or did not (the server's matcher
// says so, not this script), and the addresses at the leaves.
// `?namespace=&path=&dtab=` prefill it, as the links in `l5d-err` do.
"use strict";

(() => {
  const {el, replace, getJSON, postJSON, fetchOk, checkDtab, debounce} = ui;
  const onNamerd = document.body.dataset.server === "namerd";
  const app = document.getElementById("app");
  const query = ui.params();

  ui.header("dtab playground");
  const where = el("select", {id: "namespace"});
  const path = el("input", {type: "text", id: "path", class: "grow mono",
    placeholder: "/svc/web", value: query.get("path") || ""});
  const dtab = el("textarea", {id: "dtab", rows: 4,
    placeholder: "dentries of your own, e.g. /svc/web => /#/io.l5d.fs/web-canary;"},
  query.get("dtab") || "");
  const dtabVerdict = el("div", {id: "dtab-verdict"});
  const go = el("button", {id: "resolve", type: "submit"}, "resolve");
  const result = el("div", {id: "result"});
  const form = el("form", {onsubmit: (e) => { e.preventDefault(); resolve(); }},
    el("div", {class: "row"}, el("label", {for: "namespace"},
      onNamerd ? "namespace" : "router"), where),
    el("div", {class: "row"}, el("label", {for: "path"}, "path"), path, go),
    el("label", {for: "dtab"}, "dtab (added after the base dtab; optional)"), dtab, dtabVerdict);
  replace(app, el("section", {class: "card"}, el("h2", {}, "dtab playground"), form), result);

  // Base dtabs by router label (router) or fetched per namespace (namerd).
  const baseDtabs = new Map();

  async function fillChoices() {
    let names;
    if (onNamerd) {
      names = await getJSON("/api/1/dtabs");
    } else {
      const doc = await getJSON("/admin/dashboard.json");
      for (const r of doc.routers) baseDtabs.set(r.label, r.dtab);
      names = doc.routers.map((r) => r.label);
    }
    const wanted = query.get("namespace");
    replace(where, names.map((n) => el("option", {value: n, selected: n === wanted}, n)));
    if (wanted && !names.includes(wanted)) {
      replace(result, el("p", {class: "message bad"}, `no ${onNamerd ? "namespace" : "router"} named ${wanted}`));
    }
  }

  async function baseDtab(name) {
    if (!onNamerd) return baseDtabs.get(name) || "";
    const response = await fetchOk(`/api/1/dtabs/${encodeURIComponent(name)}`,
      {headers: {Accept: "application/dtab"}});
    return (await response.text()).trim();
  }

  const checkLocal = debounce(async () => {
    if (!dtab.value.trim()) {
      dtab.classList.remove("invalid");
      replace(dtabVerdict);
      return;
    }
    const verdict = await checkDtab(dtab.value);
    dtab.classList.toggle("invalid", !verdict.ok);
    replace(dtabVerdict, verdict.ok ? null : el("p", {class: "message bad"},
      `line ${verdict.line}, column ${verdict.column}: ${verdict.message}`));
  }, 150);
  dtab.addEventListener("input", checkLocal);

  async function resolve() {
    const name = where.value;
    const params = new URLSearchParams({path: path.value.trim()});
    if (dtab.value.trim()) params.set("dtab", dtab.value);
    const url = onNamerd
      ? `/api/1/delegate/${encodeURIComponent(name)}?${params}`
      : `/delegator.json?namespace=${encodeURIComponent(name)}&${params}`;
    history.replaceState(null, "", `/delegator?namespace=${encodeURIComponent(name)}&${params}`);
    replace(result, el("p", {class: "muted"}, "resolving…"));
    let tree;
    let base;
    try {
      [tree, base] = await Promise.all([getJSON(url), baseDtab(name)]);
    } catch (e) {
      replace(result, el("p", {class: "message bad", id: "resolve-error"}, e.message));
      return;
    }
    const whole = [base, dtab.value].filter((d) => d.trim()).join(";\n");
    let explained = {dentries: [], tried: {}};
    try {
      explained = await postJSON("/admin/dtab/explain", {dtab: whole, paths: pathsOf(tree)});
    } catch (e) {
      // The tree is still worth showing.
    }
    const howTried = explained.dentries.length > 0
      ? "dentries are tried from the last to the first; each that matches is an alternative, " +
        "the first listed preferred"
      : "this router's own dtab is empty: its names are resolved by its interpreter (e.g. " +
        "namerd), whose dentries are shown in the tree as they were used";
    replace(result, el("section", {class: "card"},
      el("h2", {}, "resolution of ", el("code", {}, tree.path || path.value)),
      el("p", {class: "muted"}, howTried),
      el("ul", {class: "tree", id: "tree"}, node(tree, explained))));
  }

  function pathsOf(tree) {
    const paths = new Set();
    (function walk(n) {
      if (!n || typeof n !== "object") return;
      if (typeof n.path === "string" && n.path.startsWith("/")) paths.add(n.path);
      for (const child of [n.delegate, ...(n.alt || []), ...(n.union || []).map((w) => w.tree)]) {
        walk(child);
      }
    })(tree);
    return [...paths].slice(0, 1000);
  }

  function shown(dentry) {
    return `${dentry.prefix}=>${dentry.dst}`;
  }

  function addresses(bound) {
    const addr = bound && bound.addr;
    if (!addr) return null;
    if (addr.type !== "bound") {
      return el("div", {class: addr.type === "failed" ? "bad" : "muted"},
        `address: ${addr.type}${addr.cause ? ` (${addr.cause})` : ""}`);
    }
    if (addr.addrs.length === 0) return el("div", {class: "bad"}, "no endpoints");
    return el("ul", {class: "addrs"}, addr.addrs.map((a) =>
      el("li", {class: "mono addr"}, `${a.ip}:${a.port}`)));
  }

  // One tree node: its path, the dentry that led here, what was tried at
  // its path, and its children or value.
  function node(n, explained, via) {
    const dentry = n.dentry ? el("span", {class: "dentry used"}, shown(n.dentry)) : null;
    const head = el("div", {},
      el("span", {class: "badge"}, n.type), " ",
      el("span", {class: "node-path mono"}, n.path),
      dentry ? [" via ", dentry] : null,
      via ? el("span", {class: "muted"}, ` ${via}`) : null);
    const parts = [head];
    const tried = explained.tried[n.path];
    if (Array.isArray(tried) && tried.length > 0) {
      parts.push(el("details", {open: n.type !== "leaf", class: "tried-at"},
        el("summary", {}, `dentries tried at ${n.path}`),
        el("ol", {class: "tried"}, tried.map((t) => {
          const text = explained.dentries[t.index];
          return el("li", {class: t.matched ? "matched" : "missed",
            value: t.index + 1, "data-dentry": text},
          el("span", {class: "dentry"}, text), ` ${t.matched ? "✓" : "✗"} ${t.why}`);
        }))));
    }
    if (n.type === "leaf") {
      parts.push(n.bound
        ? [el("div", {class: "mono"}, "bound to ", el("strong", {class: "bound-id"}, n.bound.id),
          n.bound.path && n.bound.path !== "/" ? ` with residual ${n.bound.path}` : ""),
        addresses(n.bound)]
        : el("div", {class: "mono"}, `name ${n.name}`));
    }
    if (n.type === "neg") parts.push(el("div", {class: "muted"}, "no dentry or namer gives this path a destination (neg)"));
    if (n.type === "fail") parts.push(el("div", {class: "bad"}, "fails (!)"));
    if (n.type === "exception") parts.push(el("div", {class: "bad"}, n.message));
    if (n.type === "transformation") {
      parts.push(el("div", {class: "muted"}, `transformed by ${n.name}`));
      if (n.bound) parts.push(addresses(n.bound));
    }
    const kids = children(n);
    if (kids.length > 0) {
      parts.push(el("ul", {}, kids.map((c) => node(c.tree, explained, c.label))));
    }
    return el("li", {class: `node ${n.type}`, "data-path": n.path}, parts);
  }

  function children(n) {
    if (n.delegate) return [{tree: n.delegate}];
    if (n.alt) return n.alt.map((tree, i) => ({tree, label: `alternative ${i + 1}`}));
    if (n.union) return n.union.map((w) => ({tree: w.tree, label: `weight ${w.weight}`}));
    return [];
  }

  fillChoices()
    .then(() => {
      if (dtab.value.trim()) checkLocal();
      if (path.value.trim()) resolve();
    })
    .catch((e) => replace(result, el("p", {class: "message bad"}, e.message)));
})();
