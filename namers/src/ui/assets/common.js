// What every admin page shares: building elements (text only: nothing
// fetched is ever parsed as markup), fetching JSON, formatting figures
// and the header bar.
"use strict";

const ui = (() => {
  // el("td", {class: "num"}, "12"): strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "value") node.value = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replace(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  // The body of a failed answer becomes the error's message.
  async function fetchOk(url, options) {
    const response = await fetch(url, options);
    if (!response.ok) {
      const text = (await response.text()).trim();
      const error = new Error(text || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  async function getJSON(url, options) {
    return (await fetchOk(url, options)).json();
  }

  async function postJSON(url, body) {
    return getJSON(url, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
    });
  }

  // The parser's verdict on a dtab: {ok, dentries} or {ok: false, line, column, message}.
  async function checkDtab(text) {
    return getJSON("/admin/dtab/check", {method: "POST", body: text});
  }

  function number(n) {
    if (n === undefined || n === null || Number.isNaN(n)) return "–";
    return Number(n).toLocaleString("en-US", {maximumFractionDigits: 1});
  }

  function percent(ratio) {
    if (ratio === undefined || ratio === null || Number.isNaN(ratio)) return "–";
    return `${(ratio * 100).toFixed(ratio >= 0.9995 ? 0 : 2)}%`;
  }

  function ms(n) {
    return n === undefined || n === null ? "–" : `${n} ms`;
  }

  function params() {
    return new URLSearchParams(window.location.search);
  }

  // Calls `fn` `wait` ms after the last call.
  function debounce(fn, wait) {
    let timer;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), wait);
    };
  }

  // The bar at the top: the server's name and its pages.
  function header(current) {
    const server = document.body.dataset.server;
    const pages = server === "namerd"
      ? [["/", "namespaces"], ["/delegator", "dtab playground"], ["/admin/metrics.json", "metrics"]]
      : [["/", "dashboard"], ["/delegator", "dtab playground"], ["/admin/metrics.json", "metrics"],
        ["/config.json", "config"], ["/client_state.json", "clients"]];
    replace(document.getElementById("top"),
      el("span", {class: "brand"}, `switchboard ${server}`),
      pages.map(([href, name]) => el("a", {href, class: name === current ? "here" : ""}, name)));
  }

  return {el, append, replace, fetchOk, getJSON, postJSON, checkDtab, number, percent, ms,
    params, debounce, header};
})();
