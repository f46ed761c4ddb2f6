// namerd's dashboard: every namespace and its dtab, edited in place. The
// parser marks errors (line and column) as one types; a save is a
// compare-and-set on the version the editor started from, so a dtab
// changed meanwhile is shown as a conflict, never overwritten unseen.
// The list and every dtab follow namerd's watches on one stream
// (/admin/dtabs.json: a browser holds only six connections to a server),
// so the page changes when anyone else's edit lands.
"use strict";

(() => {
  const {el, replace, fetchOk, checkDtab, debounce} = ui;
  const app = document.getElementById("app");
  const TOKEN_KEY = "switchboard.writeToken";

  ui.header("namespaces");
  const token = el("input", {type: "password", id: "write-token", class: "mono",
    placeholder: "write token (if namerd has one)", value: sessionStorage.getItem(TOKEN_KEY) || ""});
  token.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, token.value));
  const listStatus = el("p", {class: "muted", id: "list-status"}, "loading…");
  const cards = el("div", {id: "namespaces"});
  const newName = el("input", {type: "text", id: "new-namespace", class: "mono", placeholder: "name"});
  const newDtab = el("textarea", {id: "new-dtab", rows: 3, placeholder: "/svc => /#/io.l5d.fs;"});
  const created = el("div");
  replace(app,
    el("div", {class: "row"}, el("label", {for: "write-token"}, "write token"), token),
    listStatus, cards,
    el("section", {class: "card"}, el("h2", {}, "new namespace"),
      el("div", {class: "row"}, newName,
        el("button", {id: "create", onclick: () => create()}, "create")),
      newDtab, created));

  const editors = new Map();

  function writeHeaders(extra) {
    const headers = {"Content-Type": "application/dtab", ...extra};
    if (token.value) headers.Authorization = `Bearer ${token.value}`;
    return headers;
  }

  // "prefix => dst;" a line, from the JSON form.
  function lines(dentries) {
    return dentries.map((d) => `${d.prefix} => ${d.dst};`).join("\n");
  }

  async function fetchDtab(ns) {
    const response = await fetchOk(`/api/1/dtabs/${encodeURIComponent(ns)}`,
      {headers: {Accept: "application/json"}, cache: "no-store"});
    return {text: lines(await response.json()), etag: response.headers.get("ETag")};
  }

  // Streams `url` (one JSON document a line) into `onValue` until it ends;
  // then `onEnd` with why.
  async function follow(url, onValue, onEnd) {
    try {
      const response = await fetchOk(url, {cache: "no-store"});
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, {stream: true});
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          try {
            onValue(JSON.parse(line));
          } catch (e) {
            onEnd(line);
            return;
          }
        }
      }
      onEnd("the watch ended");
    } catch (e) {
      onEnd(e.message);
    }
  }

  function editor(ns) {
    const area = el("textarea", {rows: 6, "data-namespace": ns, class: "dtab-editor"});
    const verdict = el("div", {class: "verdict"});
    const note = el("div", {class: "note"});
    const save = el("button", {class: "save"}, "save");
    const revert = el("button", {class: "plain revert"}, "revert");
    const card = el("section", {class: "card", "data-namespace": ns},
      el("h2", {}, ns, " ", el("a", {href: `/delegator?namespace=${encodeURIComponent(ns)}`,
        class: "badge"}, "playground")),
      area, verdict,
      el("div", {class: "row"}, save, revert, note));
    const state = {ns, card, area, etag: null, saved: ""};

    const markDirty = () => card.classList.toggle("dirty", area.value !== state.saved);
    const check = debounce(async () => {
      const v = await checkDtab(area.value);
      area.classList.toggle("invalid", !v.ok);
      save.disabled = !v.ok;
      replace(verdict, v.ok ? null : el("p", {class: "message bad"},
        `line ${v.line}, column ${v.column}: ${v.message}`));
    }, 120);
    area.addEventListener("input", () => { markDirty(); check(); });

    function say(cls, ...text) {
      note.className = `note message ${cls}`;
      replace(note, ...text);
    }

    async function load() {
      const {text, etag} = await fetchDtab(ns);
      state.etag = etag;
      state.saved = text;
      area.value = text;
      markDirty();
      check();
    }

    save.addEventListener("click", async () => {
      save.disabled = true;
      try {
        const response = await fetch(`/api/1/dtabs/${encodeURIComponent(ns)}`, {
          method: "PUT", body: area.value, headers: writeHeaders({"If-Match": state.etag}),
        });
        const body = (await response.text()).trim();
        if (response.status === 412) {
          const server = await fetchDtab(ns);
          say("bad", "not saved: someone changed this dtab since you loaded it. namerd now has:",
            el("pre", {class: "conflict"}, server.text),
            "your edit is still in the editor; revert to take namerd's, or save again to replace it.");
          state.etag = server.etag;
          state.saved = server.text;
          markDirty();
          return;
        }
        if (response.status === 401) {
          say("bad", "not saved: namerd needs its write token (enter it above)");
          return;
        }
        if (!response.ok) {
          say("bad", `not saved: ${body || response.status}`);
          return;
        }
        state.etag = response.headers.get("ETag") || state.etag;
        state.saved = area.value;
        markDirty();
        say("ok", "saved");
      } catch (e) {
        say("bad", `not saved: ${e.message}`);
      } finally {
        save.disabled = area.classList.contains("invalid");
      }
    });

    revert.addEventListener("click", async () => {
      await load();
      say("muted", "reverted to namerd's version");
    });

    // A change from namerd's watch replaces an untouched editor, and is
    // pointed out in one being edited (whose save will then conflict).
    state.update = (dentries, etag) => {
      if (etag === state.etag) return;
      const text = lines(dentries);
      const first = state.etag === null;
      if (first || area.value === state.saved) {
        state.etag = etag;
        state.saved = text;
        area.value = text;
        markDirty();
        check();
        if (!first) say("muted", `updated from namerd at ${new Date().toLocaleTimeString()}`);
      } else if (text !== state.saved) {
        say("warn", "namerd's dtab changed while you were editing; saving will show the conflict");
      }
    };
    state.failed = (why) => say("bad", `namerd cannot read this namespace: ${why}`);
    return state;
  }

  function showList(names) {
    for (const [ns, state] of editors) {
      if (!names.includes(ns)) {
        state.card.remove();
        editors.delete(ns);
      }
    }
    for (const ns of names) {
      if (!editors.has(ns)) editors.set(ns, editor(ns));
    }
    replace(cards, names.map((ns) => editors.get(ns).card));
    listStatus.className = "muted";
    replace(listStatus, names.length === 0 ? "no namespaces yet" :
      `${names.length} namespace${names.length === 1 ? "" : "s"}, following namerd's watch`);
  }

  async function create() {
    const ns = newName.value.trim();
    try {
      await fetchOk(`/api/1/dtabs/${encodeURIComponent(ns)}`,
        {method: "POST", body: newDtab.value, headers: writeHeaders({})});
      replace(created, el("p", {class: "message ok"}, `created ${ns}`));
      newName.value = "";
      newDtab.value = "";
    } catch (e) {
      replace(created, el("p", {class: "message bad"}, `not created: ${e.message}`));
    }
  }

  follow("/admin/dtabs.json", (line) => {
    if (line.namespaces) {
      showList(line.namespaces);
    } else if (line.namespace && editors.has(line.namespace)) {
      const state = editors.get(line.namespace);
      if (line.error) state.failed(line.error);
      else state.update(line.dtab, line.etag);
    }
  }, (why) => {
    listStatus.className = "bad";
    replace(listStatus, `no longer following namerd: ${why}`);
  });
})();
